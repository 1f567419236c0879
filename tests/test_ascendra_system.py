"""Ascendra end to end on the simulator: invariants, offload records, partitions, admission control."""

from __future__ import annotations

import pytest

from ascendra.errors import UserError
from ascendra.harness.config import RunConfig
from ascendra.harness.simulate import simulate

BASE = RunConfig.of(system="ascendra", workload="uniform:prompt=32-2000,output=8-300", num_requests=400, rate=40.0)


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
    outcome = simulate(BASE.replace(partition="1L2H"))
    hps = outcome.records.loc[outcome.records["offloaded"], "instances"].str.split(",").str[-1]
    assert set(hps) == {"hp0", "hp1"}


def test_admission_control_drops_instead_of_serving_late():
    overloaded = BASE.replace(rate=120.0)
    plain = simulate(overloaded).summary
    dropping = simulate(overloaded.replace(admission_control=True)).summary
    assert plain["dropped"] == 0 and dropping["dropped"] > 0
    assert dropping["finished"] + dropping["dropped"] == dropping["arrived"]


def test_offload_margin_defaults_follow_the_paper():
    def margin(config: RunConfig) -> float:
        return config.knobs.offload_margin(config.model)

    assert margin(RunConfig.of(system="ascendra")) == 0.7
    assert margin(RunConfig.of(system="ascendra", model="mistral-7b")) == 1.0
    assert margin(RunConfig.of(system="ascendra", margin=0.2)) == 0.2


@pytest.mark.parametrize(
    "changes",
    [{"partition": "2L1H", "instances": 2}, {"partition": "0L3H"}, {"partition": "two"}, {"value_fn": "x"}],
)
def test_bad_ascendra_options_are_user_errors(changes):
    with pytest.raises(UserError):
        BASE.replace(**changes)
