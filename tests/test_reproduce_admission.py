"""Admission control (what the admission experiment runs), one rule for every system: a never-started waiting
request is dropped once its wait plus its predicted prefill exceeds the TTFT SLO; already-scheduled (preempted)
requests and those that can still make it are kept."""

from __future__ import annotations

import pytest

from ascendra.admission import Admission, ttft_admission
from ascendra.harness.config import RunConfig
from ascendra.harness.simulate import simulate
from ascendra.kv_cache import BlockManager
from ascendra.request import Request, RequestSpec
from baselines.sarathi import SarathiScheduler
from baselines.vllm import VllmScheduler


def req(request_id: int, arrival: float, prompt: int = 64, output: int = 4) -> Request:
    return Request(RequestSpec(request_id, arrival, prompt, output))


#: A predictor of round numbers: 1 ms of prefill per prompt token.
MS_PER_TOKEN = Admission(1.0, lambda request: 0.001 * request.remaining_prefill)


@pytest.mark.parametrize("make", [lambda b: VllmScheduler(b, 128, 8192), lambda b: SarathiScheduler(b)])
def test_requests_whose_wait_plus_predicted_prefill_passes_the_slo_are_dropped(make) -> None:
    policy = make(BlockManager(1000))
    policy.admission = MS_PER_TOKEN
    # At 5.0: waited 0.6 + 500 ms > 1 s: lost; waited 0.6 + 300 ms: kept; waited 5 s: lost.
    lost, kept, old = req(0, 4.4, prompt=500), req(1, 4.4, prompt=300), req(2, 0.0)
    for request in (old, lost, kept):
        policy.add(request, 5.0)
    batch = policy.schedule(5.0)
    assert policy.rejected == [old, lost] and lost.dropped and old.dropped
    assert [item.request for item in batch.items] == [kept]


def test_the_shipped_rule_predicts_with_the_performance_model() -> None:
    rule = ttft_admission("llama-3.1-8b", "a100-80gb", 1, ttft_slo=1.0)
    short, long = req(0, 0.0, prompt=100), req(1, 0.0, prompt=8000)
    assert 0.0 < rule.prefill_time(short) < rule.prefill_time(long)
    assert not rule.hopeless(short, 0.5) and rule.hopeless(short, 1.0)
    assert rule.hopeless(long, 1.0 - rule.prefill_time(long) + 0.01)


def test_off_by_default_and_scheduled_requests_kept() -> None:
    policy = VllmScheduler(BlockManager(1000))
    policy.add(req(0, 0.0), 5.0)
    policy.schedule(5.0)
    assert not policy.rejected
    policy = VllmScheduler(BlockManager(1000))
    policy.admission = MS_PER_TOKEN
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
