"""DistServe's rules on hand-built runs: FCFS whole-prompt prefill batches under a token budget, the KV hand-off
charged by the link model before the decode may start, and back-pressure from a full decode side."""

from __future__ import annotations

import pytest

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.harness.build import build_system, one_executor
from ascendra.harness.config import RunConfig
from ascendra.kv_cache import BlockManager
from ascendra.link import LINKS
from ascendra.request import Request, RequestSpec
from ascendra.sim.cluster import Cluster, RunResult
from baselines.distserve import DistServeConfig, PrefillScheduler

LLAMA_KV_PER_TOKEN = 32 * 2 * 8 * 128 * 2  # layers x (K, V) x KV heads x head dim x bf16 bytes


def linear_cost(batch: Batch) -> float:
    """0.1 s per iteration plus 1 ms per token."""
    return 0.1 + 0.001 * batch.num_tokens


def run(specs: list[RequestSpec], num_blocks: int = 64, **flat: object) -> RunResult:
    config = RunConfig.of(system="distserve", **flat)
    built = build_system(config, one_executor(linear_cost), num_blocks=num_blocks)
    return Cluster(built.instances, built.router, config.cluster.transfer_time()).run(specs)


def test_prefill_batches_whole_prompts_first_come_first_served_within_the_token_budget() -> None:
    scheduler = PrefillScheduler(BlockManager(1024), max_batch=128, max_tokens=8192)
    for i, prompt in enumerate([3000, 5000, 6000, 100]):
        scheduler.add(Request(RequestSpec(i, 0.0, prompt, 4)), 0.0)
    batch = scheduler.schedule(0.0)
    # 3000 + 5000 fit 8192; 6000 does not, and the 100-token prompt behind it waits (no skipping).
    assert [(item.request.id, item.num_tokens) for item in batch.items] == [(0, 3000), (1, 5000)]
    assert batch.num_decodes == 0
    scheduler.on_batch_done(batch, 1.0)
    # Both emitted their first token and stay here, holding their KV, without decoding.
    assert [r.id for r in scheduler.held()] == [0, 1]
    assert [(item.request.id, item.num_tokens) for item in scheduler.schedule(1.0).items] == [(2, 6000), (3, 100)]


def test_the_decode_starts_only_after_the_kv_crossed_the_link() -> None:
    result = run([RequestSpec(0, 0.0, 100, 3)], link="infiniband")
    (move,) = result.moves
    (request,) = result.requests
    assert (move.source, move.target, move.kv_tokens) == ("prefill0", "decode0", 100)
    link = LINKS["infiniband"]
    expected = link.latency_s + 100 * LLAMA_KV_PER_TOKEN / link.bandwidth_bps
    assert move.decided == pytest.approx(0.2)  # the prefill of 100 tokens ends at 0.1 + 0.1
    assert move.latency == pytest.approx(expected)
    assert request.token_times[0] == pytest.approx(0.2)
    # One decode (0.101 s) after the KV arrived, then the next.
    assert request.token_times[1:] == pytest.approx([0.2 + expected + 0.101, 0.2 + expected + 0.202])
    assert request.instances == ["prefill0", "decode0"] and request.preemptions == 0


def test_a_full_decode_side_holds_prefilled_requests_and_their_kv_on_the_prefill_instance() -> None:
    # 1P1D, 8 blocks of 16 tokens per instance: the decode instance holds one 100-token request (7 blocks at its
    # longest) at a time, so the second, prefilled at 0.4, waits on the prefill instance until the first finishes.
    specs = [RequestSpec(0, 0.0, 100, 5), RequestSpec(1, 0.2, 100, 5)]
    result = run(specs, num_blocks=8, instances=2, placement="1P1D", link="200")
    first, second = result.requests
    assert all(r.finished and r.preemptions == 0 for r in result.requests)
    assert second.token_times[0] == pytest.approx(0.4)  # its prefill ran as soon as the first had left
    hand_offs = {m.request_id: m for m in result.moves}
    assert hand_offs[0].decided == pytest.approx(0.2)
    assert hand_offs[1].decided == pytest.approx(first.finish_time)  # back-pressure: only once room was freed
    assert second.token_times[1] > first.finish_time


def test_held_kv_blocks_new_prefills() -> None:
    # The held first request fills the prefill pool (7 of 8 blocks): the second cannot prefill until it leaves.
    specs = [RequestSpec(0, 0.0, 100, 5), RequestSpec(1, 0.0, 100, 5), RequestSpec(2, 0.05, 100, 5)]
    result = run(specs, num_blocks=8, instances=2, placement="1P1D", link="200")
    assert all(r.finished for r in result.requests)
    first_tokens = [r.token_times[0] for r in result.requests]
    hand_offs = {m.request_id: m.decided for m in result.moves}
    assert first_tokens[1] >= hand_offs[0] and first_tokens[2] >= hand_offs[1]


@pytest.mark.parametrize("placement", ["1P", "0P3D", "P2D", "2p1d"])
def test_bad_placements_are_user_errors(placement: str) -> None:
    with pytest.raises(UserError, match="placement"):
        DistServeConfig(placement=placement)


def test_the_placement_must_use_every_instance() -> None:
    with pytest.raises(UserError, match="pass --instances 4"):
        RunConfig.of(system="distserve", placement="2P2D")
