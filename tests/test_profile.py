"""Profiling on one instance: the logged compositions reproduce the executor's time, and the fit is accurate."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ascendra.costmodel import CostModel
from ascendra.errors import UserError
from ascendra.harness.profiling import EXTRA_COLUMNS, ProfileSpec, kind_counts, profile, run_summary
from ascendra.perfmodel.fit import fit
from ascendra.perfmodel.log import COLUMNS, parse_compositions, validate_log
from workloads import make_workload

WORKLOAD = "uniform:prompt=32-1500,output=8-300"
SPEC = ProfileSpec(workload=WORKLOAD, rates=(3.0, 12.0), num_requests=120, seed=3)


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    return profile(SPEC)


def test_log_follows_the_schema_and_covers_every_run(log: pd.DataFrame) -> None:
    assert list(log.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert set(EXTRA_COLUMNS) <= set(log.columns)
    validate_log(log)  # raises on a bad row
    parse_compositions(log)  # every row's kind matches its composition
    runs = run_summary(log)
    assert [(r["system"], r["rate"]) for r in runs] == [(s, q) for s in ("vllm", "sarathi") for q in (3.0, 12.0)]
    assert sum(r["batches"] for r in runs) == len(log)
    counts = kind_counts(log)
    assert counts["prefill"] > 0 and counts["decode"] > 0 and counts["mixed"] > 0
    # vLLM never mixes prefills and decodes; Sarathi's chunked batches do.
    assert set(log.loc[log["system"] == "vllm", "kind"]) == {"prefill", "decode"}
    assert (log.loc[log["system"] == "sarathi", "kind"] == "mixed").any()
    assert (log["start_s"].groupby([log["system"], log["rate"]]).diff().dropna() > 0).all()


def test_compositions_are_those_at_scheduling_time(log: pd.DataFrame) -> None:
    """Re-costing each logged composition gives the logged seconds: contexts were captured, not read later."""
    cost = CostModel.load("llama-3.1-8b", "a100-80gb", 1)
    prefills, decodes = parse_compositions(log)
    recomputed = [cost.time_of(p, d) for p, d in zip(prefills, decodes, strict=True)]
    assert recomputed == pytest.approx(log["seconds"].tolist(), rel=1e-9)


def test_prefill_chunks_add_up_to_the_prompts(log: pd.DataFrame) -> None:
    """Each run prefills every prompt at least once (more only when a preempted request is recomputed)."""
    prompts = sum(s.prompt_tokens for s in make_workload(WORKLOAD, num_requests=120, rate=3.0, seed=3).requests)
    for (_, _), part in log.groupby(["system", "rate"]):
        chunks = sum(c for row in part["prefills"] for c, _ in json.loads(row))
        assert chunks >= prompts
    low = log[(log["rate"] == 3.0)]
    for _, part in low.groupby("system"):  # a light load: no preemption, each prompt prefilled exactly once
        assert sum(c for row in part["prefills"] for c, _ in json.loads(row)) == prompts
        # Sarathi's chunks continue where the previous one stopped: prior context + chunk never exceeds a prompt.
        assert max(c + p for row in part["prefills"] for c, p in json.loads(row)) <= 1500


def test_fit_on_the_profile_is_accurate_for_decodes(log: pd.DataFrame) -> None:
    _, report = fit(log, seed=0)
    decode = report.kinds["decode"]
    assert decode.test.r2 > 0.9 and decode.validation.r2 > 0.9
    assert decode.test.mape_pct < 10


def test_same_spec_same_log() -> None:
    spec = ProfileSpec(workload=WORKLOAD, rates=(5.0,), num_requests=40, systems=("sarathi",))
    assert profile(spec).equals(profile(spec))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"systems": ("ascendra",)}, "cannot profile system 'ascendra' on one instance: --partition 2L1H"),
        ({"systems": ()}, "no systems"),
        ({"systems": ("vllm", "vllm")}, "listed twice"),
        ({"rates": (0.0,)}, "rates must be positive"),
        ({"backend": "gpu"}, "unknown backend"),
        ({"model": "nope"}, "nope"),
        ({"num_requests": 0}, "num-requests"),
    ],
)
def test_bad_specs_are_user_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(UserError, match=match):
        ProfileSpec(**kwargs)
