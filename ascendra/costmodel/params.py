"""The cost model's chosen (not measured) constants: attention efficiencies and the engine's CPU overhead.

The GEMM/norm/activation times and the all-reduce times come from measured profiles (see ``calibrate``);
attention and the per-iteration CPU work are not profiled, so they are modelled with the constants below.
``ascbench calibrate`` copies them into the packaged JSON, which is what the runtime reads: a user who
profiles their own hardware edits or regenerates that file, not this module.

Choices and why:

- Prefill attention (FlashAttention-style, compute-bound): FLOPs ``4 * heads * head_dim`` per (query, key)
  pair over the causal triangle plus the prior context, at a fraction of the tensor-core peak.
  A100: 0.55. FlashAttention-2 reaches ~50-73% of the 312 TFLOP/s peak for long causal sequences with
  head_dim 128 (FA2 paper); the mixed, often short, chunks of a serving engine sit at the lower end.
  H100: 0.35. Sarathi-era engines run FA2, which reaches ~335 of 989 TFLOP/s on H100 (FA2/FA3 papers);
  FA3 would be ~0.6-0.75.
  A chunk is also never faster than reading its KV once at the decode bandwidth (matters for tiny chunks
  over long contexts).
- Decode attention (paged attention, memory-bound): the bytes of the cached K and V of every decode
  (context + the new token) read once per layer at 0.70 of the HBM bandwidth on both GPUs (paged/flash
  decoding kernels reach ~60-80%; small batches and short contexts sit lower).
- Attention kernel launch: 0.01 ms per layer for each attention kernel an iteration runs (one for its
  prefill chunks, one for its decodes).
- CPU overhead of the engine per iteration: ``cpu_overhead_ms + cpu_overhead_per_seq_ms * sequences``.
  Python engines (vLLM v0, Sarathi-Serve) spend several ms per step scheduling, preparing input tensors,
  sampling and processing outputs, and part of that work grows with the number of sequences (per-sequence
  Python bookkeeping, detokenisation, top-p sampling over the vocabulary); the vLLM v0.6 release notes
  report GPU time as only ~38% of a Llama-3-8B step on H100 for this reason.
  Chosen as 4.0 ms + 0.30 ms per sequence: it reconciles the published measured point (Llama-3.1-8B on
  one A100, a decode step of 20 requests at ~2K context takes ~26 ms, of 27 requests ~30 ms; the GPU work
  alone is ~15.0 and ~16.6 ms here, so most of the 4 ms step must be per-sequence host work) with a
  single-sequence decode step of ~15 ms (~10 ms of weight reads plus overhead). The model then predicts
  25.1 and 28.7 ms for the two points (-3.6%, -4.3%).
"""

from __future__ import annotations

from typing import Any

GPU_PARAMS: dict[str, dict[str, float]] = {
    "a100-80gb": {"prefill_attention_efficiency": 0.55, "decode_attention_bandwidth_efficiency": 0.70},
    "h100-80gb": {"prefill_attention_efficiency": 0.35, "decode_attention_bandwidth_efficiency": 0.70},
}

ENGINE_PARAMS: dict[str, float] = {
    "attention_launch_ms": 0.01,
    "cpu_overhead_ms": 4.0,
    "cpu_overhead_per_seq_ms": 0.30,
}


def chosen_params() -> dict[str, Any]:
    """The constants as they are written into the calibrated JSON (copies, so callers may not mutate ours)."""
    return {"gpus": {g: dict(p) for g, p in GPU_PARAMS.items()}, "engine": dict(ENGINE_PARAMS)}
