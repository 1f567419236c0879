"""``--distributed ray``: the engines in Ray actors serve exactly the tokens the in-process engines serve."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("ray", reason="Ray is not installed (the dist extra)")

from ascendra.errors import UserError  # noqa: E402
from ascendra.harness.config import RunConfig  # noqa: E402
from ascendra.harness.live_run import run_live  # noqa: E402
from ascendra.live.engines import LiveOptions  # noqa: E402
from ascendra.live.ray_executor import RayEngineExecutor, RayEngines  # noqa: E402
from workloads import make_workload  # noqa: E402


def config(system: str, workload: str, num_requests: int) -> RunConfig:
    knobs = {"partition": "1L1H"} if system == "ascendra" else {}  # a knob of Ascendra only
    return RunConfig.of(
        system=system,
        workload=workload,
        model="tiny",
        instances=2,
        rate=40.0,
        num_requests=num_requests,
        **knobs,
    )


def outputs(system: str, workload: str, options: LiveOptions) -> tuple[dict[int, list[int]], int]:
    """Each request's generated ids, and how many preemptions the run had."""
    cfg = config(system, workload, 8)
    wl = make_workload(cfg.workload.name, model="tiny", num_requests=8, rate=cfg.rate, seed=cfg.workload.seed)
    requests = run_live(cfg, wl, options).result.requests
    assert all(len(r.output_ids) == r.output_len for r in requests)
    return {r.id: r.output_ids for r in requests}, sum(r.preemptions for r in requests)


@pytest.mark.parametrize(
    ("system", "workload", "blocks"),
    [
        ("ascendra", "fixed:prompt=40,output=6", 64),
        ("vllm", "fixed:prompt=16,output=8", 64),
        ("vllm", "fixed:prompt=40,output=40", 6),  # a small KV pool: preempted requests recompute
    ],
)
def test_ray_outputs_match_in_process(ray_session, system: str, workload: str, blocks: int) -> None:
    """Greedy decoding of the same workload (synthetic prompts) is identical with and without Ray."""
    local, _ = outputs(system, workload, LiveOptions(num_blocks=blocks))
    remote, preemptions = outputs(system, workload, LiveOptions(num_blocks=blocks, distributed="ray"))
    assert remote == local
    if blocks == 6:
        assert preemptions > 0, "the small pool was meant to force preemptions"


def test_ray_executor_records_both_timings(ray_session) -> None:
    cfg = config("vllm", "fixed:prompt=16,output=4", 4)
    wl = make_workload(cfg.workload.name, model="tiny", num_requests=4, rate=cfg.rate, seed=cfg.workload.seed)
    outcome = run_live(cfg, wl, LiveOptions(num_blocks=32, distributed="ray"))
    assert len(outcome.result.requests) == 4
    executors = [node.execute for node in outcome.result.instances]
    assert all(isinstance(ex, RayEngineExecutor) for ex in executors)
    timings = [t for ex in executors for t in ex.timings]
    assert timings and all(0 < engine <= round_trip for round_trip, engine in timings)


def test_missing_ray_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UserError, match="install the dist extra"):
        RayEngines("tiny", LiveOptions(distributed="ray"), 8, True, 1)


def test_unknown_distributed_mode_is_a_user_error() -> None:
    with pytest.raises(UserError, match="--distributed"):
        LiveOptions(distributed="mpi")


def test_bad_device_is_a_user_error(ray_session) -> None:
    cfg = config("vllm", "fixed:prompt=16,output=4", 2)
    with pytest.raises(UserError, match="unsupported device"):
        run_live(cfg, None, LiveOptions(num_blocks=32, distributed="ray", device="tpu"))
