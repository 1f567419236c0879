"""The live executor: runs a scheduler's batch on the real engine and returns the seconds it took.

It has the simulator's executor signature (``Batch -> seconds``), so a live instance is the same
``Instance`` (name + scheduler + executor) the simulator builds; only who calls the executor, and when, differs.
Running a batch has one side effect the cost model has not: every sampled token is appended to its request's
``output_ids`` here, before the runtime calls ``scheduler.on_batch_done``, because the request's next decode
feeds that token back into the engine.

It is also a ``KVEndpoint`` (``ascendra.live.kv_moves``): a move between instances copies the request's KV pages
out of this engine's pool or into it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import torch

from ascendra.batch import Batch
from ascendra.engine import Engine
from ascendra.kv_cache import BlockManager

T = TypeVar("T")


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
        device = engine.device
        self._copies = torch.cuda.Stream(device) if device.type == "cuda" else None

    def __call__(self, batch: Batch) -> float:
        """Execute ``batch``, append each emitted token to its request, return the wall-clock seconds.

        ``Engine.execute`` returns token ids as Python ints, so the device has synchronised by then and the
        measured time is the batch's real end-to-end time (preparation, forward pass, sampling)."""
        start = time.perf_counter()
        table = self.blocks.block_table
        tokens = self.engine.execute(batch, {request.id: table(request.id) for request in batch.requests()})
        for request in batch.requests():
            token = tokens[request.id]
            if token is not None:
                request.output_ids.append(token)
        return time.perf_counter() - start

    def take_kv(self, request_id: int, block_ids: list[int]) -> torch.Tensor:
        """A copy of the pages of ``block_ids`` (every layer's K and V) on this engine's device, complete."""
        return self._synchronised(lambda: self.engine.kv_cache.read_blocks(block_ids))

    def put_kv(self, request_id: int, block_ids: list[int], pages: object) -> None:
        """Write another engine's ``take_kv`` into blocks ``block_ids``; returns once written."""
        assert isinstance(pages, torch.Tensor)
        self._synchronised(lambda: self.engine.kv_cache.write_blocks(block_ids, pages))

    def _synchronised(self, copy: Callable[[], T]) -> T:
        """Run a KV copy and wait for it. On CUDA it runs on this executor's own stream: instances in one process
        share the device, and on the default stream the copy would queue behind, and its wait include, a batch
        another instance thread has in flight (which never touches these blocks)."""
        if self._copies is None:
            return copy()
        with torch.cuda.stream(self._copies):
            out = copy()
        self._copies.synchronize()
        return out
