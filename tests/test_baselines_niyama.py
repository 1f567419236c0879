"""Hand-built cases for Niyama: dynamic chunking under TBT deadlines, hybrid priority, eager relegation."""

from __future__ import annotations

import pytest

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.harness.registry import systems
from ascendra.kv_cache import BlockManager
from ascendra.perfmodel import PerfModel
from ascendra.request import Request, RequestSpec
from baselines.niyama import LOW_MEMORY_SEARCH_SPACE, TOKEN_SEARCH_SPACE, NiyamaConfig, NiyamaScheduler

PERF = PerfModel.load("llama-3.1-8b", "a100-80gb", 1)
TTFT, TBT, FACTOR = 1.0, 0.15, 1.2


def req(request_id: int, prompt: int, output: int = 100, arrival: float = 0.0) -> Request:
    return Request(RequestSpec(request_id, arrival, prompt, output))


def niyama(blocks: int = 20_000, **kw) -> NiyamaScheduler:
    kw.setdefault("tbt_slo", TBT)
    return NiyamaScheduler(BlockManager(blocks, 16), PERF, TTFT, **kw)


def decoding(s: NiyamaScheduler, request_id: int, prompt: int, token_times: list[float]) -> Request:
    """A running request past its prefill, with KV for its prompt and ``token_times`` emitted."""
    r = req(request_id, prompt, output=1000)
    s.blocks.grow(r, prompt)
    r.num_computed = prompt
    r.token_times.extend(token_times)
    r.first_scheduled = 0.0
    s.running.append(r)
    return r


def mid_prefill(s: NiyamaScheduler, request_id: int, prompt: int, done: int, arrival: float = 0.0) -> Request:
    """A running request that has computed ``done`` tokens of its prompt."""
    r = req(request_id, prompt, arrival=arrival)
    s.blocks.grow(r, prompt)
    r.num_computed = done
    r.first_scheduled = arrival
    s.running.append(r)
    return r


def shape(batch: Batch) -> list[tuple[int, int, bool]]:
    return [(item.request.id, item.num_tokens, item.is_prefill) for item in batch.items]


def prefills(batch: Batch) -> list[tuple[int, int]]:
    return [(item.request.id, item.num_tokens) for item in batch.items if item.is_prefill]


def predicted(chunk: int, prior: int, contexts: list[int]) -> float:
    return PERF.predict([(chunk, prior)] if chunk > 0 else [], contexts)


# --- dynamic chunking -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_decodes", "tbt", "delay", "prior"),
    [(8, 0.15, 0.0, 0), (32, 0.15, 0.03, 0), (64, 0.15, 0.04, 0), (16, 0.25, 0.0, 0), (24, 0.15, 0.0, 6000)],
)
def test_the_chunk_is_the_largest_candidate_that_keeps_every_decode_on_time(
    num_decodes: int, tbt: float, delay: float, prior: int
) -> None:
    """Decodes whose last tokens came at 1.0 s (one at 0.98 s: the tightest deadline) and a long prompt (fresh,
    or mid-prefill with ``prior`` tokens cached): the iteration size is a candidate whose predicted time, times
    the safety factor, fits the tightest slack, and the next candidate's does not."""
    s = niyama(tbt_slo=tbt)
    for i in range(num_decodes):
        decoding(s, i, 400 + 50 * i, [0.5, 0.98 if i == 3 else 1.0])
    if prior:
        mid_prefill(s, 99, 30_000, prior)
    else:
        s.add(req(99, 30_000, arrival=0.9), 0.9)
    now = 1.0 + delay
    batch = s.schedule(now)
    contexts = [400 + 50 * i for i in range(num_decodes)]
    slack = 0.98 + tbt - now
    total = batch.num_tokens
    assert batch.num_decodes == num_decodes and prefills(batch)[0][0] == 99
    assert total in TOKEN_SEARCH_SPACE and total < TOKEN_SEARCH_SPACE[-1]  # not capped: the deadline decides
    assert FACTOR * predicted(total - num_decodes, prior, contexts) <= slack
    following = TOKEN_SEARCH_SPACE[TOKEN_SEARCH_SPACE.index(total) + 1]
    assert FACTOR * predicted(following - num_decodes, prior, contexts) > slack


def test_the_chunk_grows_with_the_slack() -> None:
    totals = []
    for delay in (0.1, 0.06, 0.03, 0.0):
        s = niyama()
        for i in range(16):
            decoding(s, i, 500, [1.0])
        s.add(req(99, 30_000), 0.5)
        totals.append(s.schedule(1.0 + delay).num_tokens)
    assert totals == sorted(totals) and len(set(totals)) == len(totals)


def test_without_decodes_the_chunk_is_the_cap_and_without_slack_the_smallest_candidate() -> None:
    s = niyama()
    s.add(req(0, 30_000), 0.0)
    assert prefills(s.schedule(0.0)) == [(0, 2552)]

    s = niyama(max_iteration_tokens=1000)
    s.add(req(0, 30_000), 0.0)
    assert prefills(s.schedule(0.0)) == [(0, 1000)]

    s = niyama()
    for i in range(10):
        decoding(s, i, 500, [1.0])
    s.add(req(99, 30_000), 1.0)
    batch = s.schedule(1.2)  # every decode is already 50 ms late
    assert batch.num_tokens == TOKEN_SEARCH_SPACE[0] and prefills(batch) == [(99, 118)]


def test_a_short_prompt_takes_only_what_it_needs_and_the_next_one_the_rest() -> None:
    s = niyama()
    s.add(req(0, 300), 0.0)
    s.add(req(1, 30_000, arrival=0.0), 0.0)
    assert prefills(s.schedule(0.0)) == [(0, 300), (1, 2252)]


def test_low_free_kv_restricts_the_candidates() -> None:
    """Under 32,000 free KV slots, the iteration holds at most 512 tokens even without decodes."""
    s = niyama(blocks=1500)  # 24,000 slots
    s.add(req(0, 20_000), 0.0)
    assert prefills(s.schedule(0.0)) == [(0, LOW_MEMORY_SEARCH_SPACE[-1])]


# --- deadlines and priority ------------------------------------------------------------------------------------


def test_decode_deadlines_per_token_and_in_niyamas_code_form() -> None:
    per_token, code = niyama(), niyama(tbt_deadline="niyama")
    r = req(0, 100, arrival=0.0)
    r.token_times.extend([0.2, 0.3])
    assert per_token.decode_deadline(r) == pytest.approx(0.3 + TBT)
    assert code.decode_deadline(r) == pytest.approx(max(0.2, 0.0 + TTFT) + 3 * TBT)
    late = req(1, 100, arrival=0.0)
    late.token_times.extend([1.5])
    assert code.decode_deadline(late) == pytest.approx(1.5 + 2 * TBT)


def test_prefills_are_served_by_hybrid_priority() -> None:
    """Priority = arrival + TTFT SLO + 0.008 s per remaining prompt token: a short late request goes before a long
    early one; with the weight at 0 the order is earliest deadline first."""
    orders = {}
    for weight in (0.008, 0.0):
        s = niyama(hybrid_weight=weight)
        s.add(req(0, 1000, arrival=0.0), 0.0)  # 1 + 8.0 = 9.0
        s.add(req(1, 400, arrival=0.2), 0.2)  # 1.2 + 3.2 = 4.4
        s.add(req(2, 100, arrival=0.5), 0.5)  # 1.5 + 0.8 = 2.3
        orders[weight] = prefills(s.schedule(0.5))
    assert orders[0.008] == [(2, 100), (1, 400), (0, 1000)]
    assert orders[0.0] == [(0, 1000), (1, 400), (2, 100)]


def test_a_request_mid_prefill_competes_by_priority_not_by_admission_order() -> None:
    s = niyama()
    mid_prefill(s, 0, 8000, 2000)  # 6,000 left: 1 + 48 = 49
    s.add(req(1, 500, arrival=0.4), 0.4)  # 1.4 + 4 = 5.4
    assert prefills(s.schedule(0.5)) == [(1, 500), (0, 2052)]


def test_a_waiting_request_that_does_not_fit_stops_admission_but_not_running_prefills() -> None:
    """Earliest deadline first (weight 0): request 1 comes first but its 63 blocks are not free; request 2 would
    fit, but admission stopped; request 0, mid-prefill, still gets its chunk (at most 512 tokens: KV is low)."""
    s = niyama(blocks=400, hybrid_weight=0.0)  # 6,400 slots
    mid_prefill(s, 0, 6000, 1000, arrival=0.3)  # holds 375 blocks, deadline 1.3
    s.add(req(1, 1000, arrival=0.0), 0.0)  # deadline 1.0
    s.add(req(2, 100, arrival=0.1), 0.1)  # deadline 1.1
    assert prefills(s.schedule(0.3)) == [(0, 512)]
    assert [r.id for r in s.waiting] == [1, 2]


# --- eager relegation ------------------------------------------------------------------------------------------


def test_a_request_predicted_to_miss_its_ttft_is_relegated_behind_later_ones() -> None:
    """At 5 s, request 0 (arrived at 0, deadline 1 s) can no longer make its TTFT: it is relegated behind request 1
    despite its better priority (1 + 4.8 < 5 + 1 + 0.8), still served with what budget is left, never dropped;
    it stays behind later requests for its next chunks too."""
    s = niyama()
    s.add(req(0, 600, arrival=0.0), 0.0)
    s.add(req(1, 100, arrival=5.0), 5.0)
    batch = s.schedule(5.0)
    assert prefills(batch) == [(1, 100), (0, 600)]
    assert s.relegated == {0}
    assert not s.drain_rejected()

    s = niyama(relegation=False)
    s.add(req(0, 600, arrival=0.0), 0.0)
    s.add(req(1, 100, arrival=5.0), 5.0)
    assert prefills(s.schedule(5.0)) == [(0, 600), (1, 100)]

    s = niyama()
    s.add(req(0, 6000, arrival=0.0), 0.0)
    batch = s.schedule(5.0)  # relegated, then its first chunk (nothing else waits)
    s.on_batch_done(batch, 6.0)
    s.add(req(2, 100, arrival=6.0), 6.0)
    assert prefills(s.schedule(6.0)) == [(2, 100), (0, 2452)]


def test_relegation_uses_the_prefill_throughput_estimate() -> None:
    """With 1,000 prefill tokens/s, a 2,000-token prompt arriving now cannot make a 1 s TTFT; a 500-token one can.
    A request already holding KV is never relegated."""
    s = niyama()
    s.prefill_rate = 1000.0
    assert s.misses_ttft(req(0, 2000, arrival=3.0), 3.0)
    assert not s.misses_ttft(req(1, 500, arrival=3.0), 3.0)
    started = mid_prefill(s, 2, 9000, 100)
    s.add(req(0, 2000, arrival=3.0), 3.0)
    s.add(req(1, 500, arrival=3.0), 3.0)
    s.schedule(3.0)
    assert s.relegated == {0} and started.id not in s.relegated


def test_the_throughput_estimate_is_a_moving_average_of_prefill_tokens_per_second() -> None:
    s = niyama()
    start = s.prefill_rate
    assert start == pytest.approx(2552 / PERF.predict_prefill(2552))
    s.add(req(0, 30_000), 0.0)
    batch = s.schedule(0.0)
    s.on_batch_done(batch, 0.5)
    s.schedule(0.5)
    assert s.prefill_rate == pytest.approx(0.995 * start + 0.005 * 2552 / 0.5)


# --- the system ------------------------------------------------------------------------------------------------


def test_niyama_is_registered_with_its_knobs() -> None:
    assert systems()["niyama"].config is NiyamaConfig
    config = NiyamaConfig()
    assert (config.max_num_seqs, config.max_iteration_tokens, config.hybrid_weight) == (128, 2552, 0.008)
    assert (config.safety_factor, config.relegation, config.tbt_deadline) == (1.2, True, "per-token")
    with pytest.raises(UserError):
        NiyamaConfig(tbt_deadline="never")
    with pytest.raises(UserError):
        NiyamaConfig(max_iteration_tokens=0)
