"""Analytic work counts of one iteration: FLOPs and bytes moved on one GPU of a tensor-parallel group.

These counts are the physics the performance model regresses on, so they follow the model's shape and nothing
measured. Conventions (all per GPU, TP shards the heads and the MLP/LM-head columns):

- A batch is prefill chunks ``(chunk_tokens, prior_context)`` and decodes; a decode with ``context`` tokens
  already in its KV cache is a chunk of one token with that prior context.
- GEMMs (QKV, O, fused gate+up, down) per layer and token: ``2 * linear_params / tp`` FLOPs; bytes: every
  weight read once per iteration, and each GEMM reads its input and writes its output activation once per token.
- Attention per layer is causal: a chunk of ``c`` tokens after ``p`` prior tokens scores
  ``c*p + c*(c+1)/2`` (query, key) pairs at ``4 * head_dim`` FLOPs per pair and head (QK^T and PV). Bytes: Q read
  and the output written per new token, the new K/V written to the cache, and K/V read once for all ``p + c``
  keys of the sequence (FlashAttention-style, no score matrix in memory).
- The LM head runs for one token per sequence: ``2 * hidden * vocab / tp`` FLOPs, its weights read once per
  iteration, the hidden state read and the logits written per sequence.

All of it is linear in four sufficient statistics of the batch (new tokens, sequences, attention pairs, keys
read) plus a once-per-iteration weight read, which is what makes prediction a handful of multiplications.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.models import ModelSpec


@dataclass(frozen=True, slots=True)
class BatchStats:
    """Sufficient statistics of a batch for the work counts."""

    tokens: int  # new tokens computed (chunk tokens + one per decode)
    seqs: int  # sequences in the batch (prefill chunks + decodes)
    attn_pairs: int  # causal (query, key) pairs summed over sequences
    kv_tokens: int  # keys read by attention, prior context + new tokens, summed over sequences
    num_prefill_tokens: int
    num_decodes: int

    @property
    def kind(self) -> str:
        """'prefill', 'decode' or 'mixed', with the same rule as :attr:`ascendra.batch.Batch.kind`."""
        if self.num_decodes == 0:
            return "prefill"
        return "decode" if self.num_prefill_tokens == 0 else "mixed"

    def with_chunk(self, tokens: int, context: int = 0) -> BatchStats:
        """These statistics plus a prefill chunk of ``tokens`` tokens after ``context`` cached ones (what a
        scheduler asks the performance model about before adding the chunk to its batch)."""
        return BatchStats(
            self.tokens + tokens,
            self.seqs + 1,
            self.attn_pairs + tokens * context + tokens * (tokens + 1) // 2,
            self.kv_tokens + context + tokens,
            self.num_prefill_tokens + tokens,
            self.num_decodes,
        )


@dataclass(frozen=True, slots=True)
class Work:
    """FLOPs and bytes of one iteration split by component, so each part can be checked on its own."""

    gemm_flops: float
    gemm_bytes: float
    attn_flops: float
    attn_bytes: float
    head_flops: float
    head_bytes: float

    @property
    def flops(self) -> float:
        return self.gemm_flops + self.attn_flops + self.head_flops

    @property
    def bytes(self) -> float:
        return self.gemm_bytes + self.attn_bytes + self.head_bytes


def batch_stats(prefills: Iterable[tuple[int, int]], decode_contexts: Sequence[int]) -> BatchStats:
    """Reduce a batch composition to its sufficient statistics (pure Python: this is on the scheduler's path)."""
    tokens = seqs = pairs = kv = 0
    for chunk, prior in prefills:
        tokens += chunk
        seqs += 1
        pairs += chunk * prior + chunk * (chunk + 1) // 2
        kv += prior + chunk
    num_prefill_tokens = tokens
    nd = len(decode_contexts)
    ctx = sum(decode_contexts)
    return BatchStats(tokens + nd, seqs + nd, pairs + ctx + nd, kv + ctx + nd, num_prefill_tokens, nd)


class WorkCounter:
    """Per-token and per-sequence work constants of one model at one TP degree, computed once."""

    __slots__ = (
        "spec",
        "tp",
        "gemm_flops_per_token",
        "gemm_weight_bytes",
        "gemm_act_bytes_per_token",
        "attn_flops_per_pair",
        "attn_bytes_per_token",
        "attn_bytes_per_key",
        "head_flops_per_seq",
        "head_weight_bytes",
        "head_act_bytes_per_seq",
    )

    def __init__(self, spec: ModelSpec, tp: int = 1) -> None:
        if not spec.valid_tp(tp):
            raise UserError(
                f"tensor parallelism {tp} must be >= 1 and divide {spec.name}'s {spec.num_heads} heads and "
                f"{spec.num_kv_heads} KV heads"
            )
        self.spec = spec
        self.tp = tp
        h, d, hd, n_layers = spec.hidden, spec.dtype_bytes, spec.head_dim, spec.num_layers
        q_out = spec.num_heads * hd
        kv_out = spec.num_kv_heads * hd
        linear_params = spec.linear_params_per_layer
        # Per-layer constants are multiplied by the layer count here, once.
        self.gemm_flops_per_token = n_layers * 2 * linear_params / tp
        self.gemm_weight_bytes = n_layers * linear_params * d / tp
        # QKV: in h, out (q+2kv)/tp; O: in q/tp, out h; gate+up: in h, out 2*ffn/tp; down: in ffn/tp, out h.
        self.gemm_act_bytes_per_token = n_layers * d * (4 * h + (q_out + 2 * kv_out + q_out + 3 * spec.ffn) / tp)
        self.attn_flops_per_pair = n_layers * 4 * hd * spec.num_heads / tp
        # Q read + output written (q_out each) and the new K and V written to the cache.
        self.attn_bytes_per_token = n_layers * d * (2 * q_out + 2 * kv_out) / tp
        self.attn_bytes_per_key = n_layers * d * 2 * kv_out / tp
        self.head_flops_per_seq = 2 * h * spec.vocab / tp
        self.head_weight_bytes = h * spec.vocab * d / tp
        self.head_act_bytes_per_seq = d * (h + spec.vocab / tp)

    def work(self, stats: BatchStats) -> Work:
        """Component-wise FLOPs and bytes of a batch; an empty batch does no work (no weights are read)."""
        if stats.seqs == 0:
            return Work(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        return Work(
            gemm_flops=self.gemm_flops_per_token * stats.tokens,
            gemm_bytes=self.gemm_weight_bytes + self.gemm_act_bytes_per_token * stats.tokens,
            attn_flops=self.attn_flops_per_pair * stats.attn_pairs,
            attn_bytes=self.attn_bytes_per_token * stats.tokens + self.attn_bytes_per_key * stats.kv_tokens,
            head_flops=self.head_flops_per_seq * stats.seqs,
            head_bytes=self.head_weight_bytes + self.head_act_bytes_per_seq * stats.seqs,
        )

    def flops_bytes(self, stats: BatchStats) -> tuple[float, float]:
        """Total (FLOPs, bytes) of a batch, without building the component breakdown (the hot path)."""
        if stats.seqs == 0:
            return 0.0, 0.0
        flops = (
            self.gemm_flops_per_token * stats.tokens
            + self.attn_flops_per_pair * stats.attn_pairs
            + self.head_flops_per_seq * stats.seqs
        )
        nbytes = (
            self.gemm_weight_bytes
            + self.head_weight_bytes
            + (self.gemm_act_bytes_per_token + self.attn_bytes_per_token) * stats.tokens
            + self.attn_bytes_per_key * stats.kv_tokens
            + self.head_act_bytes_per_seq * stats.seqs
        )
        return flops, nbytes

    def count(self, prefills: Iterable[tuple[int, int]], decode_contexts: Sequence[int]) -> Work:
        """Component-wise work of a batch given as prefill chunks ``(chunk_tokens, prior_context)`` and decode
        contexts (tokens already cached per decoding sequence)."""
        return self.work(batch_stats(prefills, decode_contexts))

    def count_batch(self, batch: Batch) -> Work:
        """Component-wise work of a scheduler's batch."""
        return self.count(*batch.composition())
