"""Baseline admission control (what the admission experiment runs): requests waiting unscheduled past the TTFT
SLO are dropped; already-scheduled (preempted) requests and fresh ones within the SLO are kept."""

from __future__ import annotations

import pytest

from ascendra.harness.config import RunConfig
from ascendra.harness.simulate import simulate
from ascendra.kv_cache import BlockManager
from ascendra.request import Request, RequestSpec
from baselines.sarathi import SarathiScheduler
from baselines.vllm import VllmScheduler


def req(request_id: int, arrival: float, prompt: int = 64, output: int = 4) -> Request:
    return Request(RequestSpec(request_id, arrival, prompt, output))


@pytest.mark.parametrize("make", [lambda b: VllmScheduler(b, 128, 8192), lambda b: SarathiScheduler(b)])
def test_late_never_scheduled_requests_are_dropped(make) -> None:
    policy = make(BlockManager(1000))
    policy.drop_after = 1.0
    old, fresh = req(0, 0.0), req(1, 4.5)
    policy.add(old, 5.0)
    policy.add(fresh, 5.0)
    batch = policy.schedule(5.0)
    assert policy.rejected == [old] and old.dropped
    assert [item.request for item in batch.items] == [fresh]


def test_off_by_default_and_scheduled_requests_kept() -> None:
    policy = VllmScheduler(BlockManager(1000))
    policy.add(req(0, 0.0), 5.0)
    policy.schedule(5.0)
    assert not policy.rejected
    policy = VllmScheduler(BlockManager(1000))
    policy.drop_after = 1.0
    started = req(0, 0.0)
    started.first_scheduled = 0.1
    policy.add(started, 5.0)
    policy.schedule(5.0)
    assert not policy.rejected


def test_overloaded_baseline_drops_with_admission_control() -> None:
    base = RunConfig.of(system="vllm", rate=150.0, num_requests=300)
    plain = simulate(base).summary
    dropping = simulate(base.replace(admission_control=True)).summary
    assert plain["dropped"] == 0
    assert dropping["dropped"] > 0
    assert dropping["ttft_p99"] <= plain["ttft_p99"]
