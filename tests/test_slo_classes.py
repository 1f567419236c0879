"""SLO classes on the workload side: the spec syntax, an exact and reproducible draw that leaves arrivals and
lengths alone, and a run config that carries classes without changing the key of a run without them."""

from __future__ import annotations

from collections import Counter

import pytest
from typer.testing import CliRunner

from ascendra.errors import UserError
from ascendra.harness.cli.main import app
from ascendra.harness.config import RunConfig
from ascendra.harness.workload import workload_of
from workloads.slo_classes import SLOClass, assign_slo_classes, class_counts, parse_slo_classes

MIX = "interactive:0.3:ttft=0.5,tbt=0.05;batch:0.7:ttft=5,tbt=0.5"
SMALL = {"workload": "uniform:prompt=16-256,output=2-64", "num_requests": 1000, "rate": 10.0}


def test_a_spec_parses_into_classes_with_the_runs_slo_where_one_is_left_out() -> None:
    assert parse_slo_classes(MIX) == (SLOClass("interactive", 0.3, 0.5, 0.05), SLOClass("batch", 0.7, 5.0, 0.5))
    assert parse_slo_classes("a:0.5:tbt=0.1; b:0.5") == (SLOClass("a", 0.5, None, 0.1), SLOClass("b", 0.5))
    assert parse_slo_classes("") == ()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("a:0.5;b:0.4", "shares must sum to 1"),
        ("a:0.5;a:0.5", "named twice"),
        ("a:1.5", "at most 1"),
        ("a:0", "positive number"),
        ("a:x", "positive number"),
        ("a:1:ttft=-1", "TTFT SLO of a"),
        ("a:1:ttft=nan", "TTFT SLO of a"),
        ("a:1:tpot=1", "unexpected 'tpot=1'"),
        ("a:1:ttft=1,ttft=2", "unexpected 'ttft=2'"),
        ("a b:1", "bad class name"),
    ],
)
def test_a_bad_spec_is_one_user_error(spec: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_slo_classes(spec)


def test_counts_are_the_shares_rounded_by_largest_remainder() -> None:
    assert class_counts([0.3, 0.7], 1000) == [300, 700]
    assert class_counts([1 / 3, 1 / 3, 1 / 3], 10) == [4, 3, 3]  # equal remainders: the earlier class
    assert class_counts([0.25, 0.75], 3) == [1, 2]  # 0.75 vs 2.25: remainders 0.75 and 0.25
    assert class_counts([0.5, 0.5], 0) == [0, 0]


def test_the_draw_matches_the_shares_is_seeded_and_keeps_arrivals_and_lengths() -> None:
    plain = workload_of(RunConfig.of(**SMALL))
    mixed = workload_of(RunConfig.of(**SMALL, slo_classes=MIX))
    again = workload_of(RunConfig.of(**SMALL, slo_classes=MIX))
    other_seed = workload_of(RunConfig.of(**SMALL, slo_classes=MIX, seed=2))
    key = [(r.request_id, r.arrival, r.prompt_tokens, r.output_tokens) for r in plain.requests]
    assert [(r.request_id, r.arrival, r.prompt_tokens, r.output_tokens) for r in mixed.requests] == key
    assert all(r.slo_class is None and r.ttft_slo is None for r in plain.requests)
    assert Counter(r.slo_class for r in mixed.requests) == {"interactive": 300, "batch": 700}
    assert {(r.slo_class, r.ttft_slo, r.tbt_slo) for r in mixed.requests} == {
        ("interactive", 0.5, 0.05),
        ("batch", 5.0, 0.5),
    }
    assert [r.slo_class for r in again.requests] == [r.slo_class for r in mixed.requests]
    assert [r.slo_class for r in other_seed.requests] != [r.slo_class for r in mixed.requests]
    # Spread over the run, not in blocks: each half of the arrivals holds close to its share.
    first_half = Counter(r.slo_class for r in mixed.requests[:500])["interactive"]
    assert 120 <= first_half <= 180


def test_a_class_without_its_own_slo_gets_the_runs() -> None:
    flat = {**SMALL, "num_requests": 10, "ttft_slo": 2.0, "tbt_slo": 0.2}
    config = RunConfig.of(**flat, slo_classes="a:0.5:ttft=0.5;b:0.5")
    specs = workload_of(config).requests
    assert {(r.slo_class, r.ttft_slo, r.tbt_slo) for r in specs} == {("a", 0.5, 0.2), ("b", 2.0, 0.2)}
    assert assign_slo_classes(specs, (), seed=1, ttft=2.0, tbt=0.2) == specs


def test_classes_are_part_of_the_stored_config_and_leave_other_keys_unchanged() -> None:
    plain = RunConfig.of(**SMALL)
    mixed = RunConfig.of(**SMALL, slo_classes=MIX)
    assert "classes" not in plain.to_dict().get("slo", {})
    assert mixed.to_dict()["slo"]["classes"] == MIX
    assert mixed.key() != plain.key()
    assert RunConfig.from_dict(mixed.to_dict()) == mixed


def test_a_bad_spec_on_the_command_line_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(app, ["sweep", "--system", "vllm", "--rates", "5", "--slo-classes", "a:0.5"])
    assert result.exit_code == 2, result.output
    assert "shares must sum to 1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
