"""Deadline policies read each request's own SLOs: two requests alike but for their SLO class, arriving together,
are treated apart (Ascendra's offload and urgency, Niyama's priority, relegation and decode deadlines, admission
control and the decode slack of chunked prefills); a request without its own SLOs keeps the run's."""

from __future__ import annotations

import pytest

from ascendra.admission import Admission
from ascendra.chunking import decode_slack
from ascendra.kv_cache import BlockManager
from ascendra.perfmodel import PerfModel
from ascendra.request import Request, RequestSpec
from ascendra.urgency import slack, value_function
from baselines.niyama import NiyamaScheduler
from tests.test_ascendra_policy import PRED, hp, lp

TIGHT = {"slo_class": "interactive", "ttft_slo": 0.8, "tbt_slo": 0.05}
LOOSE = {"slo_class": "batch", "ttft_slo": 5.0, "tbt_slo": 0.5}


def req(i: int, arrival: float, prompt: int, output: int = 4, **slo: object) -> Request:
    return Request(RequestSpec(i, arrival, prompt, output, **slo))  # type: ignore[arg-type]


def test_ascendra_lp_offloads_the_tight_class_and_keeps_the_loose_one() -> None:
    """Waited 0.2 + max(batch 0.2, prefill 0.1) + margin 0.5 = 0.9 s: past the tight class's 0.8 s TTFT, within
    the run's 1 s and the loose class's 5 s."""
    s = lp(margin=0.5)
    tight, loose, default = req(0, 0.0, 100, **TIGHT), req(1, 0.0, 100, **LOOSE), req(2, 0.0, 100)
    for r in (tight, loose, default):
        s.add(r, 0.0)
    assert s.take_at_risk(0.2, batch_time=0.2) == [tight]
    assert list(s.waiting) == [loose, default]


def test_urgency_ranks_by_each_requests_own_deadline() -> None:
    """Slack = own TTFT - waited - prefill: 0.8 - 0.2 - 0.1 = 0.5 s against 5 - 0.3 = 4.7 s; the LP and the HP put
    the tight request first although it arrived last."""
    loose, tight = req(0, 0.0, 100, **LOOSE), req(1, 0.0, 100, **TIGHT)
    assert slack(tight, 0.2, 1.0, PRED) == pytest.approx(0.5)
    assert slack(loose, 0.2, 1.0, PRED) == pytest.approx(4.7)
    assert slack(req(2, 0.0, 100), 0.2, 1.0, PRED) == pytest.approx(0.7)  # the run's 1 s
    basic = value_function("basic", 1.0, PRED)
    assert basic(tight, 0.2) == pytest.approx(1.2 / 0.8 / 100)
    low, high = lp(), hp()
    for s in (low, high):
        s.add(loose, 0.0)
        s.add(tight, 0.0)
    assert low._ranked(0.2) == [tight, loose]
    assert list(high._admission_order(0.2)) == [tight, loose]


def test_admission_drops_by_the_requests_own_ttft() -> None:
    admission = Admission(1.0, PRED.prefill_time)
    assert admission.hopeless(req(0, 0.0, 100, **TIGHT), 0.75)  # 0.75 + 0.1 > 0.8
    assert not admission.hopeless(req(1, 0.0, 100, **LOOSE), 0.75)
    assert not admission.hopeless(req(2, 0.0, 100), 0.75)  # 0.85 <= 1


def test_the_decode_slack_is_the_earliest_own_next_token_deadline() -> None:
    tight, loose = req(0, 0.0, 10, **TIGHT), req(1, 0.0, 10, **LOOSE)
    tight.token_times.append(1.0)
    loose.token_times.append(0.9)
    assert decode_slack([tight, loose], 0.15, 1.0) == pytest.approx(0.05)  # min(1.0 + 0.05, 0.9 + 0.5) - 1.0
    plain = [req(2, 0.0, 10), req(3, 0.0, 10)]
    plain[0].token_times.append(1.0)
    plain[1].token_times.append(0.9)
    assert decode_slack(plain, 0.15, 1.0) == pytest.approx(0.05)  # min(1.0, 0.9) + 0.15 - 1.0


PERF = PerfModel.load("llama-3.1-8b", "a100-80gb", 1)


def niyama(**kw: object) -> NiyamaScheduler:
    return NiyamaScheduler(BlockManager(20_000, 16), PERF, 1.0, 0.15, **kw)  # type: ignore[arg-type]


def test_niyama_orders_relegates_and_paces_by_the_requests_own_slos() -> None:
    s = niyama(hybrid_weight=0.0)
    loose, tight = req(0, 0.0, 100, 50, **LOOSE), req(1, 0.0, 100, 50, **TIGHT)
    assert s.priority(tight) == pytest.approx(0.8) and s.priority(loose) == pytest.approx(5.0)
    s.add(loose, 0.0)
    s.add(tight, 0.0)
    assert [item.request for item in s.schedule(0.0).items] == [tight, loose]  # earliest deadline first
    # Relegation at 1,000 prefill tokens/s: at 0.75 s a 100-token prefill ends at 0.85 s, past 0.8 s, within 1 s.
    s.prefill_rate = 1000.0
    late_tight, late_loose = req(2, 0.0, 100, **TIGHT), req(3, 0.0, 100, **LOOSE)
    assert s.misses_ttft(late_tight, 0.75)
    assert not s.misses_ttft(late_loose, 0.75) and not s.misses_ttft(req(4, 0.0, 100), 0.75)
    for r in (late_tight, late_loose):
        r.token_times.extend([0.5, 0.6])
    assert s.decode_deadline(late_tight) == pytest.approx(0.65)
    assert s.decode_deadline(late_loose) == pytest.approx(1.1)
    code = niyama(tbt_deadline="niyama")
    assert code.decode_deadline(late_tight) == pytest.approx(max(0.5, 0.8) + 3 * 0.05)
