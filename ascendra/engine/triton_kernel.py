"""The Triton kernel behind ``triton_attention.paged_attention_triton`` (see there for the layout and why).

A module of its own so that importing the engine never imports triton: only the first in-place attention call
does (CPU runs never make one).
"""

import triton
import triton.language as tl


@triton.jit
def paged_attn_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    o_ptr,
    part_ptr,
    lse_ptr,
    bt_ptr,
    tile_seq_ptr,
    tile_row_ptr,
    tile_len_ptr,
    tile_pos_ptr,
    stride_qt,
    stride_qh,
    stride_kb,
    stride_ks,
    stride_kh,
    stride_bt,
    scale,
    window,
    num_rows,
    num_heads,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    GROUP: tl.constexpr,
    BLOCK_M: tl.constexpr,
    ROWS: tl.constexpr,
    HAS_WINDOW: tl.constexpr,
    PRECISION: tl.constexpr,
    SPLITS: tl.constexpr,
):
    tile = tl.program_id(0)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    seq = tl.load(tile_seq_ptr + tile)
    row0 = tl.load(tile_row_ptr + tile)
    n_q = tl.load(tile_len_ptr + tile)
    pos0 = tl.load(tile_pos_ptr + tile)

    r = tl.arange(0, ROWS)  # BLOCK_M * GROUP rows padded to a power of two
    tok = r // GROUP
    head = kv_head * GROUP + r % GROUP
    d = tl.arange(0, BLOCK_D)
    d_ok = d < HEAD_DIM
    row_ok = (tok < n_q) & (r < BLOCK_M * GROUP)
    q_pos = pos0 + tok
    q_off = (row0 + tok)[:, None] * stride_qt + head[:, None] * stride_qh + d[None, :]
    q = tl.load(q_ptr + q_off, mask=row_ok[:, None] & d_ok[None, :], other=0.0)

    m_i = tl.full([ROWS], -1.0e30, dtype=tl.float32)
    l_i = tl.zeros([ROWS], dtype=tl.float32)
    acc = tl.zeros([ROWS, BLOCK_D], dtype=tl.float32)
    last = pos0 + n_q - 1
    # Key tiles of BLOCK_N positions (several cache blocks, their ids gathered from the table at once).
    first = (tl.maximum(pos0 - window + 1, 0) // BLOCK_N) * BLOCK_N  # window is huge without one
    n_off = tl.arange(0, BLOCK_N)
    per_split = ((last - first) // BLOCK_N + SPLITS) // SPLITS  # key tiles per split, rounded up
    lo = first + split * per_split * BLOCK_N
    hi = tl.minimum(lo + per_split * BLOCK_N, last + 1)
    for start in range(lo, hi, BLOCK_N):
        k_pos = start + n_off
        blk = k_pos // BLOCK_SIZE
        block_id = tl.load(bt_ptr + seq * stride_bt + blk, mask=k_pos <= last, other=0).to(tl.int64)
        kv_off = (
            block_id[:, None] * stride_kb + (k_pos % BLOCK_SIZE)[:, None] * stride_ks + kv_head * stride_kh + d[None, :]
        )
        k = tl.load(k_ptr + kv_off, mask=d_ok[None, :], other=0.0)
        v = tl.load(v_ptr + kv_off, mask=d_ok[None, :], other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION).to(tl.float32) * scale
        ok = k_pos[None, :] <= q_pos[:, None]
        if HAS_WINDOW:
            ok = ok & (k_pos[None, :] > q_pos[:, None] - window)
        s = tl.where(ok, s, -1.0e30)
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(s - m_new[:, None])
        p = tl.where(ok, p, 0.0)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION).to(tl.float32)
        m_i = m_new
    out = acc / tl.maximum(l_i, 1.0e-30)[:, None]
    if SPLITS == 1:
        tl.store(o_ptr + q_off, out.to(o_ptr.dtype.element_ty), mask=row_ok[:, None] & d_ok[None, :])
    else:  # partial result and its log-sum-exp (-inf for a split that saw no key), merged by the caller
        at = (split * num_rows + row0 + tok) * num_heads + head
        tl.store(part_ptr + at[:, None] * HEAD_DIM + d[None, :], out, mask=row_ok[:, None] & d_ok[None, :])
        lse = tl.where(l_i > 0, m_i + tl.log(tl.maximum(l_i, 1.0e-30)), float("-inf"))
        tl.store(lse_ptr + at, lse, mask=row_ok)
