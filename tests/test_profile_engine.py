"""`profile --backend engine`: batches of live runs on the real engine, logged in the perf-model schema."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from ascendra.harness.profiling import ProfileSpec, profile  # noqa: E402
from ascendra.perfmodel.log import validate_log  # noqa: E402


def test_engine_profile_logs_measured_batches_of_every_request():
    spec = ProfileSpec(
        model="tiny",
        workload="fixed:prompt=16,output=4",
        rates=(50.0,),
        num_requests=6,
        systems=("vllm",),
        backend="engine",
        kv_blocks=64,
    )
    log = profile(spec)
    validate_log(log)
    assert (log["backend"] == "engine").all() and (log["seconds"] > 0).all()
    prefills = [json.loads(p) for p in log["prefills"]]
    assert sum(chunk for batch in prefills for chunk, _ in batch) == 6 * 16  # every prompt prefilled once
    decodes = [json.loads(d) for d in log["decode_contexts"]]
    assert sum(len(batch) for batch in decodes) == 6 * 3  # 3 decode steps after each prefill's first token
    assert set(log["kind"]) <= {"prefill", "decode"}  # vLLM never mixes
