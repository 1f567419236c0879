"""Ascendra end to end on the simulator: invariants, offload records, partitions, admission control."""

from __future__ import annotations

import pytest

from ascendra.config import RunConfig
from ascendra.errors import UserError
from ascendra.sim.simulate import simulate

BASE = RunConfig(system="ascendra", workload="uniform:prompt=32-2000,output=8-300", num_requests=400, rate=40.0)


def test_every_request_finishes_or_is_dropped_once_and_offloads_are_recorded():
    outcome = simulate(BASE)
    records = outcome.records
    assert (records["finish_time"].notna() ^ records["dropped"]).all()
    offloaded = records[records["offloaded"]]
    assert len(offloaded) > 0, "at 40 QPS on 2 LP instances some requests must be at risk"
    assert offloaded["instances"].str.fullmatch(r"lp\d,hp0").all()
    assert (offloaded["offload_time"] >= offloaded["arrival"]).all()
    assert (offloaded["first_scheduled"] >= offloaded["offload_time"]).all()  # never started on the LP
    direct = records[~records["offloaded"]]
    assert direct["instances"].str.fullmatch(r"(lp\d|hp0)").all()
    assert outcome.summary["offloaded"] == len(offloaded)


def test_two_high_priority_instances_share_the_offloads():
    outcome = simulate(RunConfig(**{**BASE.to_dict(), "partition": "1L2H"}))
    hps = outcome.records.loc[outcome.records["offloaded"], "instances"].str.split(",").str[-1]
    assert set(hps) == {"hp0", "hp1"}


def test_admission_control_drops_instead_of_serving_late():
    overloaded = {**BASE.to_dict(), "rate": 120.0}
    plain = simulate(RunConfig(**overloaded)).summary
    dropping = simulate(RunConfig(**{**overloaded, "admission_control": True})).summary
    assert plain["dropped"] == 0 and dropping["dropped"] > 0
    assert dropping["finished"] + dropping["dropped"] == dropping["arrived"]


def test_offload_margin_defaults_follow_the_paper():
    assert RunConfig(system="ascendra").offload_margin == 0.7
    assert RunConfig(system="ascendra", model="mistral-7b").offload_margin == 1.0
    assert RunConfig(system="ascendra", margin=0.2).offload_margin == 0.2


@pytest.mark.parametrize(
    "changes",
    [{"partition": "2L1H", "instances": 2}, {"partition": "0L3H"}, {"partition": "two"}, {"value_fn": "x"}],
)
def test_bad_ascendra_options_are_user_errors(changes):
    with pytest.raises(UserError):
        RunConfig(**{**BASE.to_dict(), **changes})
