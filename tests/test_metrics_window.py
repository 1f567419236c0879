"""Warm-up and cool-down exclusion on a hand-built records table, and its place in the stored config."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from ascendra.errors import UserError
from ascendra.harness.config import RunConfig
from ascendra.harness.runs import run_point
from ascendra.metrics import SLO, summarize
from ascendra.metrics.window import parse_span, steady_mask, summarize_window
from ascendra.records import records_frame
from ascendra.request import Request, RequestSpec

SLO_ = SLO(ttft=1.0, tbt=0.5)


def _request(rid: int, arrival: float, ttft: float) -> Request:
    req = Request(RequestSpec(rid, arrival, prompt_tokens=16, output_tokens=2))
    req.token_times = [arrival + ttft, arrival + ttft + 0.1]
    req.first_scheduled = arrival
    req.finish_time = req.token_times[-1]
    return req


def records():
    """Ten requests arriving at 0..9 s (listed out of order); 0, 1 (warm-up) and 9 (cool-down) have a 5 s TTFT,
    the rest 0.2 s."""
    ttft = {0: 5.0, 1: 5.0, 9: 5.0}
    return records_frame([_request(i, float(i), ttft.get(i, 0.2)) for i in (3, 0, 9, 1, 2, 4, 5, 6, 7, 8)])


def test_parse_span() -> None:
    assert parse_span("30") == (30.0, False) and parse_span("2.5s") == (2.5, False)
    assert parse_span("10%") == (pytest.approx(0.1), True) and parse_span("0") == (0.0, False)
    for bad in ("", "-1", "100%", "ten", "5m", "nan"):
        with pytest.raises(UserError, match="bad --warmup"):
            parse_span(bad)


def test_masks_drop_exactly_the_stated_requests() -> None:
    arrival = np.array([3.0, 0.0, 9.0, 1.0, 2.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    dropped = lambda mask: sorted(arrival[~mask].tolist())  # noqa: E731
    assert dropped(steady_mask(arrival, "20%", "10%")) == [0.0, 1.0, 9.0]
    assert dropped(steady_mask(arrival, "2", "0.5s")) == [0.0, 1.0, 9.0]  # arrivals before 2 s, after 8.5 s
    assert dropped(steady_mask(arrival, "29%", "0")) == [0.0, 1.0]  # floor(2.9) = 2, not 3
    assert dropped(steady_mask(arrival)) == []


def test_window_changes_attainment_and_latency_not_counts_or_throughput() -> None:
    table = records()
    whole = summarize(table, SLO_)
    assert whole["attainment"] == pytest.approx(0.7)
    summary = summarize_window(table, SLO_, whole, "20%", "1s")
    assert summary["attainment"] == 1.0 and summary["ttft_p99"] == pytest.approx(0.2)
    assert (summary["warmup_excluded"], summary["cooldown_excluded"]) == (2, 1)
    assert summary["arrived"] == 10 and summary["throughput_rps"] == whole["throughput_rps"]
    assert summarize_window(table, SLO_, whole, "0", "0") is whole  # off: nothing changes, no extra columns


def test_warmup_is_part_of_the_stored_config_and_defaults_keep_keys() -> None:
    assert "slo" not in RunConfig.of().to_dict()
    config = RunConfig.of(ttft_slo=2.0)
    stored = {"schema": 2, "system": "ascendra", "slo": {"ttft": 2.0}}  # the form before warm-up existed
    assert config.key() == hashlib.sha256(json.dumps(stored, sort_keys=True).encode()).hexdigest()[:12]
    warm = RunConfig.of(ttft_slo=2.0, warmup="10%")
    assert warm.to_dict()["slo"] == {"ttft": 2.0, "warmup": "10%"} and warm.key() != config.key()
    assert RunConfig.from_dict(warm.to_dict()) == warm
    with pytest.raises(UserError, match="bad --cooldown"):
        RunConfig.of(cooldown="x")


def test_a_run_point_states_its_window() -> None:
    config = RunConfig.of(system="vllm", workload="uniform:prompt=32-300,output=8-30", num_requests=50, instances=1)
    _, plain = run_point(config)
    records, row = run_point(config.replace(warmup="10%", cooldown="4%"))
    assert "warmup_excluded" not in plain and (row["warmup_excluded"], row["cooldown_excluded"]) == (5, 2)
    assert row["arrived"] == plain["arrived"] == 50


def test_cli_bad_warmup_is_one_line_exit_2(tmp_path) -> None:
    from typer.testing import CliRunner

    import ascendra.harness.cli.main  # noqa: F401  (registers the commands)
    from ascendra.harness.cli.app import app

    result = CliRunner().invoke(app, ["sweep", "--warmup", "150%", "--out", str(tmp_path / "never")])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert "bad --warmup" in result.stderr and not (tmp_path / "never").exists()
