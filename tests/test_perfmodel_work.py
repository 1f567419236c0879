"""Work counts and features of the performance model, checked against hand-computed numbers."""

from __future__ import annotations

import pytest

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.models import get_model
from ascendra.perfmodel import WorkCounter, batch_stats, features
from ascendra.request import Request, RequestSpec

# The tiny model: 2 layers, hidden 64, ffn 128, 4 heads, 2 KV heads, head dim 16, vocab 512, fp16.
# Batch: one prefill chunk of 3 tokens after 5 cached ones, one decode with 7 tokens cached.
TOKENS = 3 + 1
SEQS = 2
PAIRS = (3 * 5 + (1 + 2 + 3)) + (7 + 1)  # causal: chunk token i sees 5 + i keys; the decode sees 7 + itself
KEYS = (5 + 3) + (7 + 1)
LINEAR_PARAMS = 64 * 64 + 2 * (64 * 32) + 64 * 64 + 3 * 64 * 128  # Q, K+V (2 KV heads x 16), O, gate/up/down


def test_stats_of_hand_case() -> None:
    stats = batch_stats([(3, 5)], [7])
    assert (stats.tokens, stats.seqs, stats.attn_pairs, stats.kv_tokens) == (TOKENS, SEQS, PAIRS, KEYS)
    assert stats.kind == "mixed"
    assert batch_stats([(3, 5)], []).kind == "prefill"
    assert batch_stats([], [7, 9]).kind == "decode"


def test_work_counts_of_hand_case() -> None:
    work = WorkCounter(get_model("tiny"), 1).count([(3, 5)], [7])
    assert LINEAR_PARAMS == 36864
    assert work.gemm_flops == 2 * 2 * LINEAR_PARAMS * TOKENS  # 2 layers x 2 FLOPs per MAC
    assert work.attn_flops == 2 * 4 * 16 * 4 * PAIRS  # layers x (QK^T + PV) x head_dim x heads
    assert work.head_flops == 2 * 64 * 512 * SEQS
    assert work.flops == 735744
    # Bytes, fp16: weights once, then per-token GEMM activations (QKV in 64 out 128, O in 64 out 64,
    # gate/up in 64 out 256, down in 128 out 64) = 832 values per layer.
    assert work.gemm_bytes == 2 * LINEAR_PARAMS * 2 + 2 * 2 * 832 * TOKENS
    # Attention per token: Q read + output written (64 each) + new K and V written (32 each);
    # per key: K and V read (32 each).
    assert work.attn_bytes == 2 * 2 * (64 + 64 + 32 + 32) * TOKENS + 2 * 2 * 64 * KEYS
    assert work.head_bytes == 2 * 64 * 512 + 2 * (64 + 512) * SEQS
    assert work.bytes == 235776


def test_tensor_parallel_splits_the_work() -> None:
    spec = get_model("llama-3.1-8b")
    one = WorkCounter(spec, 1).count([(512, 100)], [2000] * 8)
    two = WorkCounter(spec, 2).count([(512, 100)], [2000] * 8)
    assert two.gemm_flops == pytest.approx(one.gemm_flops / 2)
    assert two.attn_flops == pytest.approx(one.attn_flops / 2)
    assert two.head_flops == pytest.approx(one.head_flops / 2)
    assert one.bytes / 2 < two.bytes < one.bytes  # replicated activations (hidden states) are not split


def test_bad_tensor_parallelism_is_a_user_error() -> None:
    with pytest.raises(UserError, match="tensor parallelism 3"):
        WorkCounter(get_model("llama-3.1-8b"), 3)


def test_empty_batch_does_no_work() -> None:
    work = WorkCounter(get_model("tiny"), 1).count([], [])
    assert (work.flops, work.bytes) == (0.0, 0.0)


def test_batch_form_matches_lists() -> None:
    done = Request(RequestSpec(0, 0.0, prompt_tokens=7, output_tokens=4), num_computed=7)
    new = Request(RequestSpec(1, 0.0, prompt_tokens=8, output_tokens=4), num_computed=5)
    batch = Batch()
    batch.add(new, 3, is_prefill=True)
    batch.add(done, 1, is_prefill=False)
    counter = WorkCounter(get_model("tiny"), 1)
    assert counter.count_batch(batch) == counter.count([(3, 5)], [7])


def test_features() -> None:
    # 2e12 FLOPs at 1e15 FLOP/s = 2 ms; 3e9 bytes at 1e12 B/s = 3 ms.
    roof, both, compute, memory = features(2e12, 3e9, 1e15, 1e12)
    assert (compute, memory) == pytest.approx((2e-3, 3e-3))
    assert roof == pytest.approx(3e-3)
    assert both == pytest.approx(5e-3)
    assert features(5e12, 3e9, 1e15, 1e12)[0] == pytest.approx(5e-3)
