"""One serving instance under the virtual clock: a scheduler and the executor cost that advances time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ascendra.batch import Batch
from ascendra.scheduler import Scheduler


@dataclass(eq=False, slots=True)
class SimInstance:
    """A scheduler plus the cost of executing its batches; ``busy_until`` is set while a batch runs."""

    name: str
    scheduler: Scheduler
    batch_time: Callable[[Batch], float]
    batch: Batch | None = None
    busy_until: float | None = None
    num_batches: int = 0
    busy_time: float = 0.0
    batch_log: list[tuple[float, Batch, float]] | None = field(default=None)

    @property
    def idle(self) -> bool:
        return self.batch is None
