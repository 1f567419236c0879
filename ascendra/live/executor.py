"""The live executor: runs a scheduler's batch on the real engine and returns the seconds it took.

It has the simulator's executor signature (``Batch -> seconds``), so a live instance is the same
``Instance`` (name + scheduler + executor) the simulator builds; only who calls the executor, and when, differs.
Running a batch has one side effect the cost model has not: every sampled token is appended to its request's
``output_ids`` here, before the runtime calls ``scheduler.on_batch_done``, because the request's next decode
feeds that token back into the engine.
"""

from __future__ import annotations

import time

from ascendra.batch import Batch
from ascendra.engine import Engine
from ascendra.kv_cache import BlockManager


class EngineExecutor:
    """One instance's engine, addressed through that instance's block manager (its block tables)."""

    def __init__(self, engine: Engine, blocks: BlockManager) -> None:
        if (engine.num_blocks, engine.block_size) != (blocks.num_blocks, blocks.block_size):
            raise ValueError(
                f"engine KV pool ({engine.num_blocks} x {engine.block_size}) differs from the block manager's "
                f"({blocks.num_blocks} x {blocks.block_size})"
            )
        self.engine = engine
        self.blocks = blocks

    def __call__(self, batch: Batch) -> float:
        """Execute ``batch``, append each emitted token to its request, return the wall-clock seconds.

        ``Engine.execute`` returns token ids as Python ints, so the device has synchronised by then and the
        measured time is the batch's real end-to-end time (preparation, forward pass, sampling)."""
        start = time.perf_counter()
        table = self.blocks.block_table
        tokens = self.engine.execute(batch, {item.request.id: table(item.request.id) for item in batch.items})
        for item in batch.items:
            token = tokens[item.request.id]
            if token is not None:
                item.request.output_ids.append(token)
        return time.perf_counter() - start
