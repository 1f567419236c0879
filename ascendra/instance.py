"""One serving instance (a GPU or a TP group): its batching policy and the executor that runs its batches.

The same object serves every runtime: under the simulator the executor is the calibrated cost model, live it is
the real engine; only who calls the executor, and on which clock, differs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ascendra.batch import Batch
from ascendra.scheduler import Scheduler

#: Runs one batch and returns the seconds it took (the cost model predicts them; an engine executes the batch,
#: appends the sampled tokens to their requests and measures them).
Executor = Callable[[Batch], float]


@dataclass(eq=False, slots=True)
class Instance:
    """A scheduler plus its executor; ``batch`` is set while a batch runs."""

    name: str
    scheduler: Scheduler
    execute: Executor
    batch: Batch | None = None
    num_batches: int = 0
    batch_log: list[tuple[float, Batch, float]] | None = field(default=None)

    @property
    def idle(self) -> bool:
        return self.batch is None
