"""A Triton kernel that attends over the paged KV cache in place, through the block tables.

Why: the torch path gathers every layer's KV blocks into a padded copy (2-3x the ideal KV traffic on a GPU, growing
with the longest context in the batch). Here each program owns one tile -- up to ``BLOCK_M`` consecutive query
tokens of one sequence times the ``GROUP`` query heads sharing one KV head (GQA) -- and streams that sequence's
cache blocks straight from the pool, ``BLOCK_N`` (64) positions per step with their block ids gathered from the
table, under an online softmax, so K/V are read once per tile and never copied. Decodes are one-token tiles;
prefill chunks with prior context are tiles of up to ``BLOCK_M`` tokens. The grid and every buffer depend only on
tensor shapes, so a decode step can be captured in a CUDA graph. Runs on CPU tensors under ``TRITON_INTERPRET=1``
(how the tests check it without a GPU). A few tiles (a batch of 1-4 decodes) cannot fill a large GPU with tiles x
KV heads programs, so long contexts are also split over ``splits`` programs along the keys (flash-decoding) and
merged by their log-sum-exp.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass

import torch

# triton is optional (CPU-only installs use the torch path) and imported only by the first kernel call.
TRITON_AVAILABLE = importlib.util.find_spec("triton") is not None


@dataclass(slots=True)
class PagedTiles:
    """The launch of one kernel call: per tile, its block-table row, first flat query row, query count and the
    position of its first query token; ``block_tables`` [S, max_blocks] int32 (padded with block 0)."""

    block_tables: torch.Tensor
    tile_seq: torch.Tensor
    tile_row: torch.Tensor
    tile_len: torch.Tensor
    tile_pos: torch.Tensor
    block_m: int
    splits: int = 1  # programs per tile along the keys (flash-decoding), merged by their log-sum-exp

    @property
    def num_tiles(self) -> int:
        return int(self.tile_seq.shape[0])


def choose_splits(num_tiles: int, kv_heads: int, max_len: int) -> int:
    """Key splits so that a few tiles still give the GPU ~256 programs, each split keeping >= 512 keys; a power of
    two, since each value compiles its own kernel."""
    n = max(1, min(16, -(-256 // (num_tiles * kv_heads)), -(-max_len // 512)))
    return 1 << (n.bit_length() - 1)


def build_tiles(
    seqs: list[tuple[int, int, int, list[int]]],
    group: int,
    device: torch.device | str,
    max_blocks: int = 0,
    splits: int | None = None,
    kv_heads: int = 8,
) -> PagedTiles:
    """Tiles for ``seqs`` [(first flat row, num query tokens, position of the first one, block table)].

    ``block_m`` is the fewest tokens that fill ``tl.dot``'s 16 rows with ``group`` heads each, doubled up to 16
    tokens when some sequence has more than one query (prefill chunks); ``max_blocks`` pads the tables wider
    (fixed shapes for CUDA graphs); ``splits`` defaults to ``choose_splits`` for ``kv_heads``."""
    longest = max(n for _, n, _, _ in seqs)
    block_m = max(1, -(-16 // group))
    if longest > 1:
        block_m = max(block_m, 16)
    width = max([max_blocks, *(len(t) for *_, t in seqs)])
    tables = [t + [0] * (width - len(t)) for *_, t in seqs]
    seq_ids, rows, lens, pos = [], [], [], []
    for s, (row, n, p, _) in enumerate(seqs):
        for off in range(0, n, block_m):
            seq_ids.append(s)
            rows.append(row + off)
            lens.append(min(block_m, n - off))
            pos.append(p + off)

    def t(x: list[int] | list[list[int]]) -> torch.Tensor:
        return torch.tensor(x, dtype=torch.int32, device=device)

    if splits is None:
        splits = choose_splits(len(seq_ids), kv_heads, max(p + n for _, n, p, _ in seqs))
    return PagedTiles(t(tables), t(seq_ids), t(rows), t(lens), t(pos), block_m, splits)


def supports(head_dim: int, block_size: int) -> bool:
    """The kernel needs power-of-two block sizes of at least 16 (``tl.dot``) and head_dim of at least 16."""
    return TRITON_AVAILABLE and block_size >= 16 and block_size & (block_size - 1) == 0 and head_dim >= 16


def paged_attention_triton(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    tiles: PagedTiles,
    out: torch.Tensor,
    sliding_window: int | None = None,
) -> None:
    """Write attention of ``q`` [T, heads, head_dim] rows named by ``tiles`` into ``out`` (same shape), over
    ``k_cache``/``v_cache`` [num_blocks, block_size, kv_heads, head_dim] that already hold the new tokens."""
    if not TRITON_AVAILABLE:
        raise RuntimeError("triton is not installed")
    import triton

    from ascendra.engine.triton_kernel import paged_attn_kernel

    _, block_size, kv_heads, head_dim = k_cache.shape
    heads = q.shape[1]
    assert q.stride(2) == 1 and k_cache.is_contiguous() and v_cache.is_contiguous() and out.stride() == q.stride()
    if tiles.num_tiles == 0:
        return
    splits = tiles.splits
    rows = q.shape[0]
    part = lse = out  # unused when splits == 1
    if splits > 1:
        part = torch.zeros((splits, rows, heads, head_dim), device=q.device, dtype=torch.float32)
        lse = torch.full((splits, rows, heads), float("-inf"), device=q.device, dtype=torch.float32)
    paged_attn_kernel[(tiles.num_tiles, kv_heads, splits)](
        q,
        k_cache,
        v_cache,
        out,
        part,
        lse,
        tiles.block_tables,
        tiles.tile_seq,
        tiles.tile_row,
        tiles.tile_len,
        tiles.tile_pos,
        q.stride(0),
        q.stride(1),
        k_cache.stride(0),
        k_cache.stride(1),
        k_cache.stride(2),
        tiles.block_tables.stride(0),
        1.0 / math.sqrt(head_dim),
        sliding_window or 2**30,
        rows,
        heads,
        HEAD_DIM=head_dim,
        BLOCK_D=triton.next_power_of_2(head_dim),
        BLOCK_SIZE=block_size,
        BLOCK_N=max(block_size, 64),
        GROUP=heads // kv_heads,
        BLOCK_M=tiles.block_m,
        ROWS=triton.next_power_of_2(tiles.block_m * (heads // kv_heads)),
        HAS_WINDOW=sliding_window is not None,
        PRECISION="ieee" if q.dtype == torch.float32 else "tf32",  # fp32 stays fp32 (no TF32 rounding)
        SPLITS=splits,
    )
    if splits > 1:  # merge: weights exp(lse - max); rows no tile covers keep ``out``
        w = torch.exp(lse - lse.amax(0, keepdim=True).clamp_min(-1e30))
        den = w.sum(0)
        merged = (part * w[..., None]).sum(0) / den.clamp_min(1e-30)[..., None]
        out.copy_(torch.where((den > 0)[..., None], merged.to(out.dtype), out))
