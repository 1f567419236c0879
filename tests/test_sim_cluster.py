"""The discrete-event runtime: exact timestamps on hand-computed scenarios, and the end-of-run invariant."""

from __future__ import annotations

import pytest

from ascendra.batch import Batch
from ascendra.instance import Instance
from ascendra.kv_cache import BlockManager
from ascendra.request import RequestSpec
from ascendra.router import RoundRobinRouter
from ascendra.sim.cluster import Cluster
from baselines.sarathi import SarathiScheduler
from baselines.vllm import VllmScheduler


def linear_cost(batch: Batch) -> float:
    """0.1 s per iteration plus 1 ms per token: easy to follow by hand."""
    return 0.1 + 0.001 * batch.num_tokens


TWO = [RequestSpec(0, 0.0, 10, 3), RequestSpec(1, 0.05, 20, 2)]


def run(scheduler, specs=TWO):
    instance = Instance("gpu0", scheduler, linear_cost)
    return Cluster([instance], RoundRobinRouter([instance])).run(specs)


def times(result):
    return {r.id: r.token_times for r in result.requests}


def test_vllm_two_requests_exact_timestamps():
    # t=0 prefill A (10 tok, 0.110 s); B arrives at 0.05 and is prefilled at 0.110 (20 tok, 0.120 s);
    # then decodes of A+B (0.102 s, B done) and A alone (0.101 s).
    result = run(VllmScheduler(BlockManager(64)))
    got = times(result)
    assert got[0] == pytest.approx([0.110, 0.332, 0.433])
    assert got[1] == pytest.approx([0.230, 0.332])
    assert result.end_time == pytest.approx(0.433)
    assert [r.first_scheduled for r in result.requests] == pytest.approx([0.0, 0.110])


def test_sarathi_two_requests_exact_timestamps():
    # chunk 8: A 8 tok | A 2 + B 6 | A decode + B 7 | A decode + B 7 (B's first token) | B decode.
    result = run(SarathiScheduler(BlockManager(64), chunk_size=8))
    got = times(result)
    assert got[0] == pytest.approx([0.216, 0.324, 0.432])
    assert got[1] == pytest.approx([0.432, 0.533])


def test_round_robin_spreads_arrivals_and_records_instance_history():
    specs = [RequestSpec(i, 0.01 * i, 8, 2) for i in range(6)]
    instances = [Instance(f"gpu{i}", VllmScheduler(BlockManager(64)), linear_cost) for i in range(3)]
    result = Cluster(instances, RoundRobinRouter(instances)).run(specs)
    assert [r.instances for r in result.requests] == [[f"gpu{i % 3}"] for i in range(6)]
    assert all(r.finished and not r.dropped for r in result.requests)


def test_request_that_can_never_fit_is_dropped_not_hung():
    specs = [RequestSpec(0, 0.0, 8, 2), RequestSpec(1, 0.0, 5000, 2)]
    result = run(VllmScheduler(BlockManager(64), max_num_batched_tokens=1024), specs)
    assert [r.dropped for r in result.requests] == [False, True]
    assert result.requests[0].finished
