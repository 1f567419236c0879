"""The paged KV cache: pools of fixed-size blocks held per request, and the sizing of the pool.

Schedulers reserve blocks through a pool (``KVPool``) before a batch runs. A real engine uses the block tables of
a ``BlockManager`` as its physical KV layout, so its block ids are real (a free list), not just a counter; the
simulator's ``BlockCounter`` keeps the same accounting without ids.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

from ascendra.errors import UserError
from ascendra.gpus import GpuSpec
from ascendra.models import ModelSpec
from ascendra.request import Request

#: Tokens per KV block: the design's (and vLLM's) 16. The one definition: everything that sizes or addresses KV
#: blocks (block managers, KV sizing, the engine's pool, live runs, benchmarks) takes a block size defaulting to it.
DEFAULT_BLOCK_SIZE = 16
GiB = 1024**3

# What vLLM's memory profiling run keeps out of the KV pool besides weights and activations: the CUDA context,
# CUDA graphs, NCCL buffers and allocator fragmentation (about 1 GiB on an 80 GB GPU in practice).
RUNTIME_OVERHEAD_BYTES = 1 * GiB


class KVCacheError(RuntimeError):
    """A scheduler asked for more blocks than are free, or freed what it does not hold: a bug, not user input."""


class KVPool(ABC):
    """A pool of ``num_blocks`` KV blocks of ``block_size`` token slots each: what schedulers reserve before a
    batch runs and free when a request ends or leaves. A request holds the first ``num_blocks_of`` blocks' worth of
    its token slots; holdings only grow until ``free``.

    Two kinds, the same accounting to the block: ``BlockManager`` hands out real block ids (an engine's KV
    layout), ``BlockCounter`` only counts them (the simulator, where no engine reads an id).
    """

    __slots__ = ("num_blocks", "block_size")

    def __init__(self, num_blocks: int, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        if num_blocks <= 0 or block_size <= 0:
            raise UserError(f"a KV cache needs positive blocks and block size, got {num_blocks} x {block_size}")
        self.num_blocks = num_blocks
        self.block_size = block_size

    @property
    @abstractmethod
    def num_free(self) -> int: ...

    @property
    def num_used(self) -> int:
        return self.num_blocks - self.num_free

    @property
    def utilization(self) -> float:
        """Share of blocks held by requests, in [0, 1]."""
        return self.num_used / self.num_blocks

    @property
    def num_token_slots(self) -> int:
        return self.num_blocks * self.block_size

    def blocks_for(self, num_tokens: int) -> int:
        """Blocks needed to hold ``num_tokens`` token slots."""
        return -(-num_tokens // self.block_size)

    @abstractmethod
    def holds(self, request: Request) -> bool:
        """Whether the request has a holding (possibly of no block yet: ``try_grow`` makes one)."""

    @abstractmethod
    def num_blocks_of(self, request: Request) -> int: ...

    def extra_blocks(self, request: Request, num_tokens_total: int) -> int:
        """Blocks ``grow(request, num_tokens_total)`` would allocate (0 if the holding already covers it)."""
        return max(0, -(-num_tokens_total // self.block_size) - self.num_blocks_of(request))

    def can_grow(self, request: Request, num_tokens_total: int) -> bool:
        """Whether enough blocks are free for the request's holding to cover ``num_tokens_total`` slots."""
        return self.extra_blocks(request, num_tokens_total) <= self.num_free

    @abstractmethod
    def try_grow(self, request: Request, num_tokens_total: int) -> bool:
        """``grow`` if enough blocks are free and return True; else change nothing and return False.

        The decode hot path: one call per decode, and usually the last block still has room."""

    @abstractmethod
    def cover_next_slots(self, boundary: Iterable[tuple[int, Request, int]], step: int) -> Request | None:
        """For each member of a decode cohort at a block boundary in order (``Cohort.at_boundary``: key, member,
        finish tick), a held block for its next slot (its base plus the cohort's ``step``, at most one block past
        the end of its holding: a decode's), taking one free block where needed; the first member that cannot get
        one (None: all covered). One call, reading the members' bases directly, for every member at a boundary."""

    @abstractmethod
    def lacking(self, boundary: Iterable[tuple[int, Request, int]], tick: int) -> list[Request]:
        """The members of a decode cohort's boundary list for tick ``tick`` (``Cohort.at_boundary(tick)``) still
        running after that tick (finish tick later) whose holding lacks the block their next slot (base plus
        ``tick``) starts, in order: those a decode step scheduled after that tick grows (a decode run ahead)."""

    @abstractmethod
    def add_blocks(self, requests: list[Request]) -> None:
        """One more block for each request (each holding some), as ``grow`` past the end of its holding by one
        slot would allocate it (the caller checked enough are free): a decode run's growth, step by step."""

    def grow(self, request: Request, num_tokens_total: int) -> None:
        """Allocate blocks so the request's holding covers ``num_tokens_total`` token slots (no-op if it does)."""
        if not self.try_grow(request, num_tokens_total):
            raise KVCacheError(
                f"request {request.id} needs {self.extra_blocks(request, num_tokens_total)} more KV blocks for "
                f"{num_tokens_total} tokens, only {self.num_free} free"
            )

    @abstractmethod
    def free(self, request: Request) -> int:
        """Return all of a request's blocks to the pool; returns how many. Freeing twice is a bug."""

    def free_moving(self, request: Request) -> int:
        """``free`` the blocks of a request leaving with its KV for another instance."""
        return self.free(request)

    def _not_held(self, request: Request) -> KVCacheError:
        return KVCacheError(f"request {request.id} holds no KV blocks to free")


class BlockManager(KVPool):
    """A pool with real block ids: a request's block table lists the block ids holding its KV, in token order;
    slot ``i`` of the request lives in block ``table[i // block_size]`` at offset ``i % block_size``.

    ``moved``: None (nothing copies KV), or, where a live runtime copies moved KV between engines, the tables of
    requests released to move with their KV (``free_moving``) that the runtime has not taken yet.
    """

    __slots__ = ("_free", "_tables", "moved")

    def __init__(self, num_blocks: int, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        super().__init__(num_blocks, block_size)
        # A stack: pop() hands out low ids first on a fresh pool, and freed blocks are reused first (warm).
        self._free: list[int] = list(range(num_blocks - 1, -1, -1))
        self._tables: dict[int, list[int]] = {}
        self.moved: dict[int, list[int]] | None = None

    @property
    def num_free(self) -> int:
        return len(self._free)

    def holds(self, request: Request) -> bool:
        return request.id in self._tables

    def block_table(self, request_id: int) -> list[int]:
        """The block ids of a request, in token order (a copy); empty if it holds none."""
        return list(self._tables.get(request_id, ()))

    def num_blocks_of(self, request: Request) -> int:
        table = self._tables.get(request.id)
        return len(table) if table is not None else 0

    def try_grow(self, request: Request, num_tokens_total: int) -> bool:
        table = self._tables.get(request.id)
        if table is None:
            table = self._tables[request.id] = []
        need = -(-num_tokens_total // self.block_size) - len(table)
        if need <= 0:
            return True
        free = self._free
        if need > len(free):
            return False
        taken = free[-need:]
        del free[-need:]
        taken.reverse()
        table.extend(taken)
        return True

    def cover_next_slots(self, boundary: Iterable[tuple[int, Request, int]], step: int) -> Request | None:
        tables, size, free = self._tables, self.block_size, self._free
        for _, request, _ in boundary:
            table = tables[request.id]
            if len(table) * size <= request._base + step:
                if not free:
                    return request
                table.append(free.pop())
        return None

    def lacking(self, boundary: Iterable[tuple[int, Request, int]], tick: int) -> list[Request]:
        tables, size = self._tables, self.block_size
        return [r for _, r, finish in boundary if finish > tick and len(tables[r.id]) * size <= r._base + tick]

    def add_blocks(self, requests: list[Request]) -> None:
        tables, free = self._tables, self._free
        for request in requests:
            tables[request.id].append(free.pop())

    def free(self, request: Request) -> int:
        table = self._tables.pop(request.id, None)
        if table is None:
            raise self._not_held(request)
        # Reversed so the request's first block is handed out first again (keeps fresh-pool ordering).
        self._free.extend(reversed(table))
        return len(table)

    def free_moving(self, request: Request) -> int:
        """``free``, and with ``moved`` on, keep the table: the router frees the blocks before the runtime sees the
        move, and the freed pages still hold the KV until an engine writes them again, so the runtime copies them
        from this table."""
        table = self._tables.get(request.id)
        count = self.free(request)
        if self.moved is not None and table is not None and request.num_computed:
            self.moved[request.id] = table
        return count

    def take_moved(self, request_id: int) -> list[int]:
        """The block table ``free_moving`` kept for ``request_id``, no longer kept."""
        if self.moved is None or request_id not in self.moved:
            raise KVCacheError(f"no block table was kept for request {request_id} when it was released")
        return self.moved.pop(request_id)


class BlockCounter(KVPool):
    """A pool that counts blocks instead of handing out ids: every answer a scheduler gets (free blocks, blocks
    held, whether a grow fits) is ``BlockManager``'s, at the cost of a few integers instead of a list per request
    and an int per block moved. The simulator's pool: nothing there reads a block id."""

    __slots__ = ("_num_free", "_held")

    def __init__(self, num_blocks: int, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        super().__init__(num_blocks, block_size)
        self._num_free = num_blocks
        self._held: dict[int, int] = {}

    @property
    def num_free(self) -> int:
        return self._num_free

    def holds(self, request: Request) -> bool:
        return request.id in self._held

    def num_blocks_of(self, request: Request) -> int:
        return self._held.get(request.id, 0)

    def try_grow(self, request: Request, num_tokens_total: int) -> bool:
        held = self._held
        have = held.setdefault(request.id, 0)
        need = -(-num_tokens_total // self.block_size) - have
        if need <= 0:
            return True
        if need > self._num_free:
            return False
        self._num_free -= need
        held[request.id] = have + need
        return True

    def cover_next_slots(self, boundary: Iterable[tuple[int, Request, int]], step: int) -> Request | None:
        held, size, free = self._held, self.block_size, self._num_free
        try:
            for _, request, _ in boundary:
                have = held[request.id]
                if have * size <= request._base + step:
                    if not free:
                        return request
                    held[request.id] = have + 1
                    free -= 1
            return None
        finally:  # the count kept in step whatever happens (a member holding nothing is a bug: KeyError)
            self._num_free = free

    def lacking(self, boundary: Iterable[tuple[int, Request, int]], tick: int) -> list[Request]:
        held, size = self._held, self.block_size
        return [r for _, r, finish in boundary if finish > tick and held[r.id] * size <= r._base + tick]

    def add_blocks(self, requests: list[Request]) -> None:
        held = self._held
        for request in requests:
            held[request.id] += 1
        self._num_free -= len(requests)

    def free(self, request: Request) -> int:
        count = self._held.pop(request.id, None)
        if count is None:
            raise self._not_held(request)
        self._num_free += count
        return count


def kv_bytes_per_block(model: ModelSpec, tp: int = 1, block_size: int = DEFAULT_BLOCK_SIZE) -> int:
    """Bytes of one KV block on one GPU of a TP group: layers x (K, V) x KV heads x head dim x dtype x slots / TP."""
    return model.kv_bytes_per_token(tp) * block_size


def estimate_activation_bytes(model: ModelSpec, tp: int = 1, max_num_batched_tokens: int = 8192) -> int:
    """Memory kept out of the KV pool for a forward pass of ``max_num_batched_tokens`` tokens.

    vLLM measures this with a profiling run; we estimate its peak from the shapes: per token, the residual and
    normed hidden states and the attention output (3 x hidden), the QKV projection, and the SwiGLU gate/up
    outputs (2 x ffn), sharded by TP where the layer is; plus logits in fp32 for one token per sequence
    (up to 256), plus the fixed runtime overhead (CUDA context, graphs, fragmentation).
    """
    qkv = (model.num_heads + 2 * model.num_kv_heads) * model.head_dim // tp
    per_token = (3 * model.hidden + qkv + 2 * model.ffn // tp) * model.dtype_bytes
    logits = 256 * model.vocab * 4 // tp
    return max_num_batched_tokens * per_token + logits + RUNTIME_OVERHEAD_BYTES


def num_kv_blocks(
    model: ModelSpec,
    gpu: GpuSpec,
    tp: int = 1,
    gpu_memory_utilization: float = 0.9,
    activation_reserve_bytes: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> int:
    """KV blocks one GPU of a TP group can hold, the way vLLM sizes its pool.

    (utilization x GPU memory - weights / TP - activation reserve) / bytes per block.
    ``activation_reserve_bytes`` defaults to ``estimate_activation_bytes(model, tp)``.
    A model that leaves no room is a user error.
    """
    if tp <= 0:
        raise UserError(f"tensor parallelism must be positive, got {tp}")
    if not 0.0 < gpu_memory_utilization <= 1.0:
        raise UserError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
    reserve = estimate_activation_bytes(model, tp) if activation_reserve_bytes is None else activation_reserve_bytes
    available = gpu_memory_utilization * gpu.memory_bytes - model.weight_bytes / tp - reserve
    blocks = int(available // kv_bytes_per_block(model, tp, block_size))
    if blocks <= 0:
        raise UserError(
            f"{model.name} with TP={tp} leaves no memory for the KV cache on {gpu.name} "
            f"(utilization {gpu_memory_utilization}): {available / GiB:.2f} GiB after weights and activations"
        )
    return blocks
