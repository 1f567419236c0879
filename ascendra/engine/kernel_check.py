"""Checks the paged-attention kernel against plain dense softmax attention on random ragged batches.

Why a module and not only a test: the same cases run in CI under Triton's interpreter (CPU tensors, small
shapes, in a subprocess so ``TRITON_INTERPRET`` never leaks into other tests) and on a real GPU from
``scripts/gpu_check.sh`` (bf16/fp16, Llama-sized heads). ``python -m ascendra.engine.kernel_check`` prints one
JSON line per case and exits non-zero when one is off.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass

import torch

from ascendra.engine.triton_attention import build_tiles, paged_attention_triton


@dataclass(frozen=True, slots=True)
class Case:
    """Query counts and prior contexts per sequence (1 query = a decode), heads, KV heads, head_dim, block size."""

    name: str
    queries: tuple[int, ...]
    contexts: tuple[int, ...]
    heads: int
    kv_heads: int
    head_dim: int
    block_size: int = 16
    sliding_window: int | None = None
    splits: int | None = None  # key splits (flash-decoding); None: the automatic choice


SMALL_CASES = (
    Case("decodes_gqa", (1, 1, 1), (0, 15, 40), 4, 2, 16),
    Case("mixed_chunks_and_decodes", (5, 20, 1, 1), (17, 3, 31, 16), 4, 1, 16),
    Case("mha_block_boundaries", (16, 1), (16, 47), 2, 2, 32),
    Case("sliding_window", (9, 1), (30, 50), 4, 2, 16, sliding_window=20),
    Case("group_of_three", (3, 1), (10, 33), 6, 2, 16),
    Case("window_skips_key_tiles", (3, 1), (100, 150), 4, 2, 16, sliding_window=20),
    Case("block_size_32", (20, 1, 1), (40, 0, 95), 4, 2, 16, block_size=32),
    Case("block_size_64", (1, 1), (64, 200), 2, 1, 16, block_size=64),
    Case("split_k_with_empty_split", (1, 1, 1), (150, 40, 0), 4, 2, 16, splits=4),
    Case("split_k_chunk_and_window", (18, 1), (130, 200), 4, 2, 16, sliding_window=70, splits=3),
)
GPU_CASES = (
    Case("llama8b_decodes", (1,) * 8, (1, 100, 1023, 1024, 1025, 4000, 17, 2048), 32, 8, 128),
    Case("llama8b_chunks_and_decodes", (512, 77, 1, 1, 1), (1024, 4000, 512, 1, 3000), 32, 8, 128),
    Case("mistral_window", (64, 1, 1), (5000, 4090, 100), 32, 8, 128, sliding_window=4096),
    Case("llama8b_one_long_decode_auto_split", (1,), (8000,), 32, 8, 128),
)


def dense_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, first_pos: int, window: int | None
) -> torch.Tensor:
    """fp32 softmax attention of q [n, H, D] at positions first_pos.. over k/v [L, KVH, D] (L = first_pos + n)."""
    group = q.shape[1] // k.shape[1]
    qf, kf, vf = q.float().transpose(0, 1), k.float().repeat_interleave(group, 1), v.float().repeat_interleave(group, 1)
    scores = qf @ kf.permute(1, 2, 0) / math.sqrt(q.shape[-1])  # [H, n, L]
    q_pos = torch.arange(first_pos, first_pos + q.shape[0], device=q.device)[:, None]
    k_pos = torch.arange(k.shape[0], device=q.device)[None, :]
    allowed = k_pos <= q_pos
    if window is not None:
        allowed &= k_pos > q_pos - window
    probs = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
    return (probs @ vf.transpose(0, 1)).transpose(0, 1)


def run_case(case: Case, device: str, dtype: torch.dtype, seed: int = 0) -> float:
    """Max abs error of the kernel against the dense reference for ``case``, blocks handed out shuffled."""
    gen = torch.Generator().manual_seed(seed)
    bs = case.block_size
    lengths = [c + n for c, n in zip(case.contexts, case.queries, strict=True)]
    need = [-(-n // bs) for n in lengths]
    perm = torch.randperm(sum(need) + 3, generator=gen).tolist()  # non-contiguous tables, spare blocks
    tables, at = [], 0
    for n in need:
        tables.append(perm[at : at + n])
        at += n
    shape = (len(perm), bs, case.kv_heads, case.head_dim)
    k_cache = torch.randn(shape, generator=gen).to(device, dtype)
    v_cache = torch.randn(shape, generator=gen).to(device, dtype)
    total_q = sum(case.queries)
    q = torch.randn((total_q, case.heads, case.head_dim), generator=gen).to(device, dtype)
    seqs, row = [], 0
    for n, c, table in zip(case.queries, case.contexts, tables, strict=True):
        seqs.append((row, n, c, table))
        row += n
    tiles = build_tiles(seqs, case.heads // case.kv_heads, device, splits=case.splits, kv_heads=case.kv_heads)
    out = torch.zeros_like(q)
    paged_attention_triton(q, k_cache, v_cache, tiles, out, case.sliding_window)
    err = 0.0
    for (row, n, c, table), length in zip(seqs, lengths, strict=True):
        idx = torch.tensor(table, device=device)
        k = k_cache[idx].flatten(0, 1)[:length]
        v = v_cache[idx].flatten(0, 1)[:length]
        ref = dense_reference(q[row : row + n], k, v, c, case.sliding_window)
        err = max(err, (out[row : row + n].float() - ref).abs().max().item())
    return err


def engine_check(device: str, dtype: torch.dtype, cuda_graphs: bool = False) -> float:
    """Max abs logit error of an engine on the Triton backend against the dense full recompute, over batches that
    mix a first chunk, chunks with context crossing blocks and decodes (GQA, block size 16); with ``cuda_graphs``
    (CUDA only) it also checks that greedy tokens of graph-replayed decode steps equal eager ones (error 1e9 if
    not)."""
    from ascendra.batch import Batch
    from ascendra.engine.config import EngineConfig
    from ascendra.engine.engine import Engine
    from ascendra.engine.reference import reference_logits
    from ascendra.engine.weights import dummy_weights
    from ascendra.request import Request, RequestSpec

    cfg = EngineConfig.from_hf_dict(
        {
            "model_type": "llama",
            "vocab_size": 61,
            "hidden_size": 64,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 256,
        }
    )
    weights = dummy_weights(cfg, seed=3, std=0.2)
    gen = torch.Generator().manual_seed(1)
    prompts = [torch.randint(cfg.shape.vocab, (n,), generator=gen).tolist() for n in (40, 7, 23)]

    def run(graphs: bool) -> tuple[float, list[list[int]]]:
        engine = Engine(cfg, weights, 24, 16, device, dtype, attention_backend="triton", cuda_graphs=graphs)
        if graphs and engine.graphs is None:  # CPU: the padded static-buffer path without capture
            from ascendra.engine.cuda_graphs import DecodeGraphs

            engine.graphs = DecodeGraphs(engine.model, engine.kv_cache, 2, eager=True)
        tables = {i: list(range(23 - 8 * i, 15 - 8 * i, -1)) for i in range(3)}  # descending, non-contiguous
        reqs = [Request(RequestSpec(i, 0.0, len(p), 4, tuple(p))) for i, p in enumerate(prompts)]
        plans = [[(0, 18, True), (1, 7, True)], [(0, 22, True), (1, 1, False), (2, 23, True)]]
        plans += [[(0, 1, False), (1, 1, False), (2, 1, False)]] * 2
        err = 0.0
        for plan in plans:
            batch = Batch()
            for rid, n, pre in plan:
                batch.add(reqs[rid], n, pre)
            if graphs:
                out = engine.execute(batch, tables)
                got = {}
            else:
                got = engine.logits(batch, tables)
                out = {rid: int(v[-1].argmax()) for rid, v in got.items()}
            for item in batch.items:
                r = item.request
                rid_logits = got.get(r.id)
                if rid_logits is not None:
                    ref = reference_logits(cfg, weights, list(r.spec.prompt_ids) + r.output_ids)
                    ref = ref[item.context : item.context + item.num_tokens]
                    err = max(err, (rid_logits.cpu() - ref).abs().max().item())
                if not item.is_prefill or item.context + item.num_tokens >= r.prefill_target:
                    r.output_ids.append(int(out[r.id]))
                r.advance(item.num_tokens, 0.0)
        if graphs and engine.graphs is not None and set(engine.graphs.graphs) != {4}:
            raise AssertionError(f"decode steps did not run padded to 4: {sorted(engine.graphs.graphs)}")
        return err, [r.output_ids for r in reqs]

    err, eager_tokens = run(False)
    if cuda_graphs:
        graph_tokens = run(True)[1]
        if graph_tokens != eager_tokens:
            return 1e9
    return err


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--cases", default="small", choices=("small", "gpu", "all"))
    parser.add_argument("--engine", action="store_true", help="also check a whole engine against the reference")
    parser.add_argument("--cuda-graphs", action="store_true", help="with --engine: graph decodes vs eager")
    args = parser.parse_args(argv)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    tol = {"fp32": 1e-4, "bf16": 3e-2, "fp16": 5e-3}[args.dtype]
    cases = {"small": SMALL_CASES, "gpu": GPU_CASES, "all": SMALL_CASES + GPU_CASES}[args.cases]
    ok = True
    for case in cases:
        err = run_case(case, args.device, dtype)
        passed = err <= tol
        ok &= passed
        print(json.dumps({"case": case.name, "dtype": args.dtype, "max_abs_err": err, "tol": tol, "ok": passed}))
    if args.engine:
        err = engine_check(args.device, dtype, args.cuda_graphs)
        tol_logits = {"fp32": 1e-3, "bf16": 0.15, "fp16": 0.03}[args.dtype]
        passed = err <= tol_logits
        ok &= passed
        print(json.dumps({"case": "engine", "dtype": args.dtype, "max_abs_err": err, "tol": tol_logits, "ok": passed}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
