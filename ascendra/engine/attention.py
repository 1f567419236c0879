"""Attention over the paged KV cache for a hybrid batch of prefill chunks and single-token decodes.

The batch's tokens are laid out as one flat sequence: every prefill chunk (in order), then every decode.
Per layer, new K/V go into the cache first; then each prefill chunk attends over its cached context plus its
own tokens (one SDPA call per chunk, causal with the chunk's offset), and all decodes attend together in one
padded, masked SDPA call. Masks and gather indices are built once per batch and shared by all layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ascendra.engine.kv_pool import PagedKVCache


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


def build_metadata(
    prefills: list[tuple[int, int, list[int]]],
    decodes: list[tuple[int, list[int]]],
    cache: PagedKVCache,
    sliding_window: int | None,
    device: torch.device | str,
) -> AttentionMetadata:
    """Metadata for ``prefills`` [(context, num_tokens, block_table)] followed by ``decodes``
    [(context, block_table)] (a decode's one new token sits at position ``context``)."""
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
