"""Attention over the paged KV cache for a hybrid batch of prefill chunks and single-token decodes.

The batch's tokens are laid out as one flat sequence: every prefill chunk (in order), then every decode.
Per layer, new K/V go into the cache first; then each prefill chunk attends over its cached context plus its
own tokens (one SDPA call per chunk, causal with the chunk's offset), and all decodes attend together in one
padded, masked SDPA call. Masks and gather indices are built once per batch and shared by all layers.

With the ``triton`` backend (the default on CUDA) decodes and chunks with prior context instead read the pool in
place through their block tables (``triton_attention``); only chunks without context keep SDPA on their fresh
rows. The CPU keeps the gather + SDPA path (Triton runs on CPU tensors only in its slow interpreter).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ascendra.engine import triton_attention
from ascendra.engine.kv_pool import PagedKVCache
from ascendra.errors import UserError

ATTENTION_BACKENDS = ("auto", "torch", "triton")


@dataclass(slots=True)
class PrefillSegment:
    """Rows [start, start + num_tokens) of the flat batch: a chunk on top of ``context`` cached tokens."""

    start: int
    num_tokens: int
    context: int
    block_ids: torch.Tensor  # blocks covering context + num_tokens positions
    mask: torch.Tensor | None  # [num_tokens, context + num_tokens] bool; None means plain causal


@dataclass(slots=True)
class AttentionMetadata:
    """Where each new token's K/V goes and what each token attends to."""

    slot_mapping: torch.Tensor  # [T] flat cache slot per new token
    prefills: list[PrefillSegment]
    decode_start: int  # rows [decode_start, T) are decodes
    decode_block_tables: torch.Tensor | None  # [D, max_blocks], padded with block 0
    decode_mask: torch.Tensor | None  # [D, 1, 1, max_blocks * block_size] bool
    tiles: triton_attention.PagedTiles | None = None  # triton backend: rows attended in place
    sliding_window: int | None = None


def resolve_backend(backend: str, device: torch.device, head_dim: int, block_size: int) -> str:
    """``auto`` picks the Triton kernel on CUDA when triton and the shapes allow it, else torch (``triton`` on a
    CPU device works only under ``TRITON_INTERPRET=1``, for tests)."""
    if backend not in ATTENTION_BACKENDS:
        raise UserError(f"unknown attention backend {backend!r}; use one of {', '.join(ATTENTION_BACKENDS)}")
    fits = triton_attention.supports(head_dim, block_size)
    if backend == "triton" and not fits:
        raise UserError(
            "attention backend 'triton' needs triton installed, a power-of-two block size >= 16 and head_dim >= 16"
        )
    if backend == "auto":
        return "triton" if device.type == "cuda" and fits else "torch"
    return backend


def build_metadata(
    prefills: list[tuple[int, int, list[int]]],
    decodes: list[tuple[int, list[int]]],
    cache: PagedKVCache,
    sliding_window: int | None,
    device: torch.device | str,
    backend: str = "torch",
    group: int = 1,
) -> AttentionMetadata:
    """Metadata for ``prefills`` [(context, num_tokens, block_table)] followed by ``decodes``
    [(context, block_table)] (a decode's one new token sits at position ``context``); ``backend`` is a resolved
    one (``torch`` or ``triton``), ``group`` the query heads per KV head."""
    if backend == "triton":
        return _triton_metadata(prefills, decodes, cache, sliding_window, device, group)
    bs = cache.block_size
    slots: list[int] = []
    segments: list[PrefillSegment] = []
    row = 0
    for context, n, table in prefills:
        total = context + n
        slots.extend(cache.slots(table, context, total))
        ids = torch.tensor(table[: -(-total // bs)], dtype=torch.long, device=device)
        mask = None
        if context > 0 or (sliding_window is not None and n > sliding_window):
            q_pos = torch.arange(context, total, device=device)[:, None]
            k_pos = torch.arange(total, device=device)[None, :]
            mask = k_pos <= q_pos
            if sliding_window is not None:
                mask &= k_pos > q_pos - sliding_window
        segments.append(PrefillSegment(row, n, context, ids, mask))
        row += n
    decode_tables = decode_mask = None
    if decodes:
        max_blocks = max(context // bs + 1 for context, _ in decodes)
        padded = []
        for context, table in decodes:
            slots.extend(cache.slots(table, context, context + 1))
            used = table[: context // bs + 1]
            padded.append(used + [0] * (max_blocks - len(used)))
        decode_tables = torch.tensor(padded, dtype=torch.long, device=device)
        pos = torch.tensor([context for context, _ in decodes], device=device)[:, None]
        k_pos = torch.arange(max_blocks * bs, device=device)[None, :]
        decode_mask = k_pos <= pos
        if sliding_window is not None:
            decode_mask &= k_pos > pos - sliding_window
        decode_mask = decode_mask[:, None, None, :]
    return AttentionMetadata(
        slot_mapping=torch.tensor(slots, dtype=torch.long, device=device),
        prefills=segments,
        decode_start=row,
        decode_block_tables=decode_tables,
        decode_mask=decode_mask,
    )


def _triton_metadata(
    prefills: list[tuple[int, int, list[int]]],
    decodes: list[tuple[int, list[int]]],
    cache: PagedKVCache,
    sliding_window: int | None,
    device: torch.device | str,
    group: int,
) -> AttentionMetadata:
    """Chunks without context keep SDPA on their own rows; everything else becomes kernel tiles (no masks)."""
    bs = cache.block_size
    slots: list[int] = []
    segments: list[PrefillSegment] = []
    in_place: list[tuple[int, int, int, list[int]]] = []
    row = 0
    for context, n, table in prefills:
        slots.extend(cache.slots(table, context, context + n))
        if context == 0:
            mask = None
            if sliding_window is not None and n > sliding_window:
                pos = torch.arange(n, device=device)
                mask = (pos[None, :] <= pos[:, None]) & (pos[None, :] > pos[:, None] - sliding_window)
            segments.append(PrefillSegment(row, n, 0, torch.empty(0, dtype=torch.long), mask))
        else:
            in_place.append((row, n, context, table[: -(-(context + n) // bs)]))
        row += n
    decode_start = row
    for context, table in decodes:
        slots.extend(cache.slots(table, context, context + 1))
        in_place.append((row, 1, context, table[: context // bs + 1]))
        row += 1
    return AttentionMetadata(
        slot_mapping=torch.tensor(slots, dtype=torch.long, device=device),
        prefills=segments,
        decode_start=decode_start,
        decode_block_tables=None,
        decode_mask=None,
        tiles=triton_attention.build_tiles(in_place, group, device, kv_heads=cache.num_kv_heads) if in_place else None,
        sliding_window=sliding_window,
    )


def paged_attention(
    layer: int,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cache: PagedKVCache,
    meta: AttentionMetadata,
) -> torch.Tensor:
    """Write ``k``/``v`` [T, kv_heads, head_dim] into the cache and return attention output [T, heads, head_dim]
    for queries ``q`` [T, heads, head_dim] (already rotated)."""
    cache.write(layer, meta.slot_mapping, k, v)
    out = torch.empty_like(q)
    if meta.tiles is not None:
        triton_attention.paged_attention_triton(q, cache.k[layer], cache.v[layer], meta.tiles, out, meta.sliding_window)
    for seg in meta.prefills:
        rows = slice(seg.start, seg.start + seg.num_tokens)
        if seg.context == 0:
            ks, vs = k[rows], v[rows]  # nothing cached before the chunk: use the fresh rows directly
        else:
            ks, vs = cache.gather(layer, seg.block_ids, seg.context + seg.num_tokens)
        o = F.scaled_dot_product_attention(
            q[rows].transpose(0, 1)[None],
            ks.transpose(0, 1)[None],
            vs.transpose(0, 1)[None],
            attn_mask=seg.mask,
            is_causal=seg.mask is None,
            enable_gqa=True,
        )
        out[rows] = o[0].transpose(0, 1)
    if meta.decode_block_tables is not None:
        kd, vd = cache.gather_padded(layer, meta.decode_block_tables)
        o = F.scaled_dot_product_attention(
            q[meta.decode_start :, None].transpose(1, 2),  # [D, heads, 1, head_dim]
            kd.transpose(1, 2),
            vd.transpose(1, 2),
            attn_mask=meta.decode_mask,
            enable_gqa=True,
        )
        out[meta.decode_start :] = o[:, :, 0]
    return out
