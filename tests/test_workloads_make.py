"""make_workload: ordering, seeding, rate independence of the lengths, trimming, replay and argument checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ascendra.errors import UserError
from workloads import Workload, list_workloads, make_workload
from workloads.stats import describe, lengths


def lengths_csv(tmp_path: Path, rows: list[tuple[int, int]]) -> str:
    path = tmp_path / "lengths.csv"
    path.write_text("num_prefill_tokens,num_decode_tokens\n" + "".join(f"{p},{o}\n" for p, o in rows))
    return str(path)


def arrivals(workload: Workload) -> np.ndarray:
    return np.array([r.arrival for r in workload.requests])


def test_requests_are_sorted_with_ids_in_order(tmp_path: Path) -> None:
    name = lengths_csv(tmp_path, [(i + 1, i + 2) for i in range(50)])
    workload = make_workload(name, num_requests=120, rate=4.0, arrival="gamma", cv=3.0)
    assert [r.request_id for r in workload.requests] == list(range(120))
    assert np.all(np.diff(arrivals(workload)) >= 0)
    assert workload.meta["cv"] == 3.0 and workload.meta["rate"] == 4.0


def test_draws_without_replacement_while_the_pool_lasts(tmp_path: Path) -> None:
    name = lengths_csv(tmp_path, [(i + 1, 1) for i in range(50)])
    prompt, _ = lengths(make_workload(name, num_requests=50))
    assert sorted(prompt.tolist()) == list(range(1, 51))
    prompt, _ = lengths(make_workload(name, num_requests=120))
    assert np.bincount(prompt).max() == 3 and np.bincount(prompt)[1:].min() == 2
    whole, _ = lengths(make_workload(name, num_requests=None))
    assert len(whole) == 50


def test_same_seed_same_workload_other_seed_other_workload(tmp_path: Path) -> None:
    name = lengths_csv(tmp_path, [(i + 1, 2 * i + 1) for i in range(200)])
    a = make_workload(name, num_requests=100, rate=5.0, seed=3)
    b = make_workload(name, num_requests=100, rate=5.0, seed=3)
    c = make_workload(name, num_requests=100, rate=5.0, seed=4)
    assert a.requests == b.requests
    assert lengths(a)[0].tolist() != lengths(c)[0].tolist()


def test_rate_changes_arrivals_only(tmp_path: Path) -> None:
    """A rate sweep with one seed serves the same requests, only closer together."""
    name = lengths_csv(tmp_path, [(i + 1, 2 * i + 1) for i in range(300)])
    slow = make_workload(name, num_requests=200, rate=10.0, seed=9)
    fast = make_workload(name, num_requests=200, rate=20.0, seed=9)
    burst = make_workload(name, num_requests=200, rate=None, arrival="fixed", seed=9)
    for other in (fast, burst):
        np.testing.assert_array_equal(lengths(slow)[0], lengths(other)[0])
        np.testing.assert_array_equal(lengths(slow)[1], lengths(other)[1])
    np.testing.assert_allclose(arrivals(fast), arrivals(slow) / 2)
    assert not arrivals(burst).any()


def test_long_requests_are_trimmed_not_dropped() -> None:
    workload = make_workload("fixed:prompt=3000,output=1000", model="tiny", num_requests=10)
    assert len(workload.requests) == 10 and workload.num_trimmed == 10
    assert {(r.prompt_tokens, r.output_tokens) for r in workload.requests} == {(1536, 512)}
    assert describe(workload)["num_trimmed"] == 10
    untouched = make_workload("fixed:prompt=3000,output=1000", model="llama-3.1-8b", num_requests=10)
    assert untouched.num_trimmed == 0


def test_trace_replay_takes_the_trace_prefix(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    path.write_text(
        "".join(f'{{"timestamp": {1000 * t}, "input_length": {10 + t}, "output_length": {1 + t}}}\n' for t in range(6))
    )
    replay = make_workload(str(path), arrival="trace", num_requests=4, time_scale=2.0)
    np.testing.assert_allclose(arrivals(replay), [0, 2, 4, 6])
    assert [r.prompt_tokens for r in replay.requests] == [10, 11, 12, 13]
    whole = make_workload(str(path), arrival="trace", num_requests=None, rate=10.0)
    assert len(whole.requests) == 6 and whole.meta["realised_rate"] == pytest.approx(10.0)
    with pytest.raises(UserError, match="only 6 requests"):
        make_workload(str(path), arrival="trace", num_requests=7)
    sampled = make_workload(str(path), num_requests=6, rate=1.0)
    assert sorted(r.prompt_tokens for r in sampled.requests) == [10, 11, 12, 13, 14, 15]


def test_sharegpt_default_workload() -> None:
    """The default: 2,000 ShareGPT requests in Llama-3 tokens, all fitting the paper's filter (< 2048 tokens)."""
    workload = make_workload("sharegpt", rate=20.0)
    prompt, output = lengths(workload)
    assert len(prompt) == 2000 and workload.num_trimmed == 0
    assert np.all(prompt + output < 2048) and np.all((prompt >= 4) | (output >= 4))
    assert workload.meta["num_conversations"] == 17_671
    assert 600 < prompt.mean() < 900 and 100 < output.mean() < 300
    assert workload.meta["realised_rate"] == pytest.approx(20.0, rel=0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "nope"}, "unknown workload 'nope'"),
        ({"name": "fixed:prompt=5,output=5", "model": "gpt-9"}, "unknown model 'gpt-9'"),
        ({"name": "fixed:prompt=5,output=5", "rate": 0.0}, "positive"),
        ({"name": "fixed:prompt=5,output=5", "rate": -2.0}, "positive"),
        ({"name": "fixed:prompt=5,output=5", "num_requests": 0}, "at least 1"),
        ({"name": "fixed:prompt=5,output=5", "arrival": "bursty"}, "unknown arrival"),
        ({"name": "fixed:prompt=5,output=5", "arrival": "trace"}, "no timestamps"),
        ({"name": "fixed:prompt=5,output=5", "num_requests": None}, "give a number of requests"),
        ({"name": "fixed:prompt=5,output=5", "time_scale": 0.0}, "time scale"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        make_workload(**kwargs)


def test_replay_needs_timestamps(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no timestamps to replay"):
        make_workload(lengths_csv(tmp_path, [(1, 1)]), arrival="trace")


def test_list_names_every_builtin() -> None:
    names = {info.name for info in list_workloads()}
    assert {"sharegpt", "sharegpt-vllm", "arxiv", "longbench", "sharegpt-8k", "azure-code", "azure-conv"} <= names
    assert {"mooncake", "fixed", "uniform", "zipf"} <= names
