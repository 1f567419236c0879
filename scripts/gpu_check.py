"""One-shot GPU check of the PyTorch engine: correctness, `bench engine`, decode roofline, a live smoke run.

Why: no GPU number of the engine exists yet; this is the single script to run on a borrowed H100/H200 (no
network, at most 8 minutes) that leaves a JSON + markdown summary behind. Without CUDA it runs a CPU fallback
(tiny shapes, seconds) so the script itself is tested in CI. Every stage is time-boxed against ``--budget-s``
and the summary is rewritten after each stage, so a kill still leaves what was measured.

    scripts/gpu_check.sh [--out DIR] [--mode auto|gpu|cpu] [--budget-s S] [--skip-tests] [--skip-live]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Spec-sheet peaks by device-name substring (first match wins): HBM TB/s and dense bf16 TFLOP/s.
PEAKS: list[tuple[str, float, float]] = [
    ("H200", 4.8, 989.0),
    ("H100 NVL", 3.9, 835.0),
    ("H100 PCIe", 2.0, 756.0),
    ("H100", 3.35, 989.0),
    ("A100-SXM4-40GB", 1.555, 312.0),
    ("A100 80GB PCIe", 1.935, 312.0),
    ("A100", 2.039, 312.0),
    ("L40S", 0.864, 362.0),
]

GPU_PLAN: dict[str, Any] = {
    "model": "llama-3.1-8b",
    "dtype": "bf16",
    "prefill": [512, 2048, 8192],
    "decode_contexts": [1024, 4096],
    "decode_batches": [1, 8, 32, 128],
    "decode_steps": 8,
    "live_model": "llama-3.1-8b",
    "live_gpu": "h100-80gb",
    "live_workload": "fixed:prompt=512,output=64",
    "live_requests": 32,
    "live_rates": [4.0, 16.0],
    "live_kv_gib": 8.0,
}
CPU_PLAN: dict[str, Any] = {
    "model": "tiny",
    "dtype": "fp32",
    "prefill": [64, 256],
    "decode_contexts": [64, 128],
    "decode_batches": [1, 8],
    "decode_steps": 3,
    "live_model": "tiny",
    "live_gpu": "a100-80gb",
    "live_workload": "fixed:prompt=16,output=4",
    "live_requests": 4,
    "live_rates": [40.0],
    "live_kv_gib": 0.25,
}
SYSTEMS = (("vllm", {}), ("sarathi", {}), ("ascendra", {"partition": "1L1H"}))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + message
        print(f"gpu_check: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _fail(message: str) -> NoReturn:
    print(f"gpu_check: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def peaks(name: str) -> tuple[float | None, float | None]:
    """(HBM TB/s, dense bf16 TFLOP/s) of a device name, or Nones when unknown (CPU, unlisted GPU)."""
    for key, hbm, flops in PEAKS:
        if key.lower() in name.lower():
            return hbm, flops
    return None, None


def decode_roofline(row: dict[str, Any], shape: Any, itemsize: int) -> dict[str, Any]:
    """Bytes one decode step must read -- every weight but the embedding table (only gathered rows) plus every
    cached K/V of the batch -- and the bandwidth the measured step time implies (host prep and sampling
    included, so this is a lower bound on the kernels' own)."""
    weights = (shape.num_params - shape.vocab * shape.hidden) * itemsize
    kv = row["batch_size"] * row["context"] * shape.num_layers * 2 * shape.num_kv_heads * shape.head_dim * itemsize
    step_s = row["decode_step_ms"] / 1e3
    return {"weight_bytes": weights, "kv_bytes": kv, "achieved_gb_s": (weights + kv) / step_s / 1e9}


def prefill_gemm_flops(shape: Any, tokens: int) -> float:
    """FLOPs of the prefill's linear layers (no embedding, no LM head: only emitting rows reach it)."""
    return 2.0 * (shape.num_params - 2 * shape.vocab * shape.hidden) * tokens


class Check:
    """Collects stage results and rewrites ``summary.json`` / ``summary.md`` after each stage."""

    def __init__(self, out: Path, budget_s: float, mode: str, device_name: str) -> None:
        self.out, self.budget_s, self.start = out, budget_s, time.monotonic()
        hbm, flops = peaks(device_name) if mode == "gpu" else (None, None)
        self.data: dict[str, Any] = {
            "mode": mode,
            "device": device_name,
            "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "budget_s": budget_s,
            "hbm_peak_tb_s": hbm,
            "bf16_peak_tflop_s": flops,
            "tests": None,
            "prefill": [],
            "decode": [],
            "decode_compare": [],
            "live": [],
            "skipped": [],
            "notes": [],
        }

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    def skip(self, what: str, why: str) -> None:
        self.data["skipped"].append({"what": what, "why": why})
        self.write()

    def write(self) -> None:
        self.data["elapsed_s"] = round(time.monotonic() - self.start, 1)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "summary.json").write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        (self.out / "summary.md").write_text(markdown(self.data))


def markdown(d: dict[str, Any]) -> str:
    """The summary as a short markdown report."""
    lines = [
        f"# Engine GPU check ({d['mode']}): {d['device']}, {d['date_utc']}",
        "",
        f"Elapsed {d.get('elapsed_s', 0)} s of a {d['budget_s']} s budget. Peaks: HBM "
        f"{d['hbm_peak_tb_s']} TB/s, dense bf16 {d['bf16_peak_tflop_s']} TFLOP/s (spec sheet; None = unknown).",
        "",
    ]
    t = d["tests"]
    if t is not None:
        lines += [f"**Correctness**: {'passed' if t['ok'] else 'FAILED'} (`{t['command']}`, {t['seconds']:.0f} s)", ""]
    if d["prefill"]:
        lines += ["## Prefill", "", "| tokens | s | tok/s | GEMM TFLOP/s | of peak |", "|---|---|---|---|---|"]
        for r in d["prefill"]:
            lines.append(
                f"| {r['tokens']} | {r['prefill_s']:.4f} | {r['prefill_tok_s']:.0f} | {r['gemm_tflop_s']:.1f} | "
                f"{_pct(r.get('of_peak'))} |"
            )
        lines.append("")
    if d["decode"]:
        lines += [
            "## Decode step (bandwidth = (weights + KV bytes) / step time)",
            "",
            "| context | batch | step ms | tok/s | GB/s | of HBM peak |",
            "|---|---|---|---|---|---|",
        ]
        for r in d["decode"]:
            lines.append(
                f"| {r['context']} | {r['batch_size']} | {r['decode_step_ms']:.2f} | {r['decode_tok_s']:.0f} | "
                f"{r['achieved_gb_s']:.1f} | {_pct(r.get('of_peak'))} |"
            )
        lines.append("")
    if d["decode_compare"]:
        lines += [
            "## Decode variants (same shapes)",
            "",
            "| variant | context | batch | step ms |",
            "|---|---|---|---|",
        ]
        for r in d["decode_compare"]:
            lines.append(f"| {r['variant']} | {r['context']} | {r['batch_size']} | {r['decode_step_ms']:.2f} |")
        lines.append("")
    if d["live"]:
        lines += [
            "## Live smoke run",
            "",
            "| system | rate | finished | TTFT mean s | TBT mean s |",
            "|---|---|---|---|---|",
        ]
        for r in d["live"]:
            s = r.get("summary", {})
            lines.append(
                f"| {r['system']} | {r['rate']} | {s.get('finished', r.get('error', '-'))} | "
                f"{_num(s.get('ttft_mean'))} | {_num(s.get('tbt_mean'))} |"
            )
        lines.append("")
    for s in d["skipped"]:
        lines.append(f"- skipped {s['what']}: {s['why']}")
    for n in d["notes"]:
        lines.append(f"- {n}")
    return "\n".join(lines) + "\n"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _num(x: Any) -> str:
    return "-" if x is None else f"{float(x):.3f}"


def run_tests(check: Check, mode: str) -> None:
    """GPU: the engine correctness tests (pytest, CUDA cases included); CPU: the kernel in Triton's interpreter."""
    if mode == "gpu":
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "tests/test_engine_paged_kernel.py"]
        cmd += ["tests/test_engine_correctness.py"]
        env = dict(os.environ)
    else:
        cmd = [sys.executable, "-m", "ascendra.engine.kernel_check"]
        env = dict(os.environ, TRITON_INTERPRET="1")
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=max(10.0, min(150.0, check.left() - 60))
        )
        ok, tail = proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
    except subprocess.TimeoutExpired:
        ok, tail = False, "timed out"
    check.data["tests"] = {"ok": ok, "command": " ".join(cmd[1:]), "seconds": time.monotonic() - t0, "tail": tail}
    check.write()


def run_bench(check: Check, plan: dict[str, Any], device: str) -> None:
    """Prefill throughput and decode step roofline through ``run_engine_bench`` (dummy weights)."""
    import torch

    from ascendra.harness.bench_engine import resolve_bench_model, run_engine_bench

    shape = resolve_bench_model(plan["model"]).shape
    itemsize = 4 if plan["dtype"] == "fp32" else 2
    hbm, flops = check.data["hbm_peak_tb_s"], check.data["bf16_peak_tflop_s"]
    threads = 1 if device == "cpu" else None
    for ctx in plan["prefill"]:
        if check.left() < 60:
            check.skip(f"prefill {ctx}", "time budget")
            continue
        row = run_engine_bench(
            plan["model"], device, (1,), ctx, 1, plan["dtype"], max(ctx, 8192), repeats=2, num_threads=threads
        )[0]
        tf = prefill_gemm_flops(shape, ctx) / row["prefill_s"] / 1e12
        row |= {"tokens": ctx, "gemm_tflop_s": tf, "of_peak": tf / flops if flops else None}
        check.data["prefill"].append(row)
        check.write()
    for ctx in plan["decode_contexts"]:
        sizes = list(plan["decode_batches"])
        if device != "cpu":
            free = torch.cuda.mem_get_info()[0]
            per_seq = (ctx + plan["decode_steps"]) * shape.num_layers * 2 * shape.num_kv_heads * shape.head_dim
            fits = [b for b in sizes if b * per_seq * itemsize < free - shape.num_params * itemsize - 8 * 2**30]
            for b in sorted(set(sizes) - set(fits)):
                check.skip(f"decode batch {b} at {ctx}", "KV does not fit GPU memory next to the weights")
            sizes = fits
        if not sizes or check.left() < 90:
            check.skip(f"decode at {ctx}", "time budget" if sizes else "memory")
            continue
        rows = run_engine_bench(
            plan["model"],
            device,
            tuple(sizes),
            ctx,
            plan["decode_steps"],
            plan["dtype"],
            repeats=1,
            num_threads=threads,
        )
        for row in rows:
            row |= decode_roofline(row, shape, itemsize)
            row["of_peak"] = row["achieved_gb_s"] / (hbm * 1e3) if hbm else None
            check.data["decode"].append(row)
        check.write()
        if device != "cpu":
            torch.cuda.empty_cache()
    if device == "cpu":
        return
    ctx = plan["decode_contexts"][0]
    for variant, opts in (("eager", {"cuda_graphs": False}), ("torch-gather", {"attention_backend": "torch"})):
        if check.left() < 120:
            check.skip(f"decode comparison {variant}", "time budget")
            continue
        rows = run_engine_bench(
            plan["model"], device, (1, 32), ctx, plan["decode_steps"], plan["dtype"], repeats=1, **opts
        )
        for row in rows:
            row |= decode_roofline(row, shape, itemsize) | {"variant": variant}
            check.data["decode_compare"].append(row)
        check.write()


def run_live_smoke(check: Check, plan: dict[str, Any], device: str) -> None:
    """vLLM, Sarathi and Ascendra (1L1H) live, two engine instances sharing the one device, a few rates."""
    from ascendra.harness.config import RunConfig
    from ascendra.harness.live_run import run_live
    from ascendra.live.engines import LiveOptions

    options = LiveOptions(device=device, dtype=plan["dtype"], kv_cache_gib=plan["live_kv_gib"])
    for rate in plan["live_rates"]:
        for system, knobs in SYSTEMS:
            if check.left() < 45:
                check.skip(f"live {system} at {rate}/s", "time budget")
                continue
            cfg = RunConfig.of(
                system=system,
                workload=plan["live_workload"],
                model=plan["live_model"],
                gpu=plan["live_gpu"],
                instances=2,
                rate=rate,
                num_requests=plan["live_requests"],
                **knobs,
            )
            t0 = time.monotonic()
            entry: dict[str, Any] = {"system": system, "rate": rate, "instances": 2}
            try:
                outcome = run_live(cfg, options=options)
                entry["summary"] = {k: v for k, v in outcome.summary.items() if isinstance(v, int | float)}
            except Exception as exc:  # a failing system is a finding, not a reason to lose the rest
                entry["error"] = f"{type(exc).__name__}: {exc}"[:300]
            entry["seconds"] = time.monotonic() - t0
            check.data["live"].append(entry)
            check.write()
    check.data["notes"].append("live: 2 instances share one device in one process (a smoke run, not a scaling one)")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(description="Engine GPU check (CPU fallback without CUDA).")
    parser.add_argument("--out", type=Path, default=None, help="output folder [default: results/gpu/<device>-<date>]")
    parser.add_argument("--mode", choices=("auto", "gpu", "cpu"), default="auto")
    parser.add_argument("--budget-s", type=float, default=450.0, help="wall-clock budget in seconds")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--skip-live", action="store_true")
    args = parser.parse_args(argv)
    if not 10 <= args.budget_s <= 480:
        _fail(f"--budget-s must be in [10, 480], got {args.budget_s:g}")
    import torch

    cuda = torch.cuda.is_available()
    if args.mode == "gpu" and not cuda:
        _fail("--mode gpu but CUDA is not available")
    mode = "gpu" if args.mode == "gpu" or (args.mode == "auto" and cuda) else "cpu"
    device = "cuda" if mode == "gpu" else "cpu"
    name = torch.cuda.get_device_name(0) if mode == "gpu" else "cpu"
    out = args.out or ROOT / "results" / "gpu" / f"{name.replace(' ', '-')}-{dt.date.today().isoformat()}"
    if out.exists() and not out.is_dir():
        _fail(f"--out {out} exists and is not a folder")
    plan = GPU_PLAN if mode == "gpu" else CPU_PLAN
    check = Check(out, args.budget_s, mode, name)
    check.data["plan"] = plan
    if mode == "cpu":
        check.data["notes"].append("CPU fallback: tiny shapes, no GPU number; run on a CUDA machine for real ones")
    check.write()
    if args.skip_tests:
        check.skip("tests", "--skip-tests")
    else:
        run_tests(check, mode)
    run_bench(check, plan, device)
    if args.skip_live:
        check.skip("live", "--skip-live")
    else:
        run_live_smoke(check, plan, device)
    check.write()
    ok = check.data["tests"] is None or check.data["tests"]["ok"]
    print(f"gpu_check: {'ok' if ok else 'TESTS FAILED'}; summary in {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
