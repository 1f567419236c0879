"""`ascbench serve` on loopback with the tiny model: the load generator completes every request, bad requests
get a 4xx and the server keeps serving."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from serve_process import ascbench_serve  # noqa: E402

from ascendra.harness.config import RunConfig  # noqa: E402
from ascendra.harness.loadgen import run_openai  # noqa: E402
from ascendra.harness.serving import serving  # noqa: E402
from ascendra.live.engines import LiveOptions  # noqa: E402
from ascendra.metrics import SLO, summarize  # noqa: E402
from ascendra.records import records_frame  # noqa: E402
from workloads import make_workload  # noqa: E402

WORKLOAD = "fixed:prompt=24,output=12"


def _config(system: str) -> RunConfig:
    instances = 3 if system == "ascendra" else 2
    return RunConfig.of(system=system, model="tiny", instances=instances, workload=WORKLOAD, backend="engine")


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serving(_config("ascendra"), LiveOptions(num_blocks=64)) as base:
        yield base


def _load(base: str, num_requests: int = 16, rate: float = 20.0) -> tuple[list, dict]:
    workload = make_workload(WORKLOAD, model="tiny", num_requests=num_requests, rate=rate, seed=3)
    result = run_openai(workload, base, model="tiny", timeout=30)
    return result.requests, result.errors


def test_every_request_completes_with_its_output_length_and_positive_latencies(url: str) -> None:
    requests, errors = _load(url)
    assert errors == {}
    for request in requests:
        assert not request.dropped and request.finish_time == request.token_times[-1]
        assert len(request.token_times) == request.output_len == 12
        assert request.token_times[0] > request.arrival
        assert all(b >= a for a, b in zip(request.token_times, request.token_times[1:], strict=False))
    summary = summarize(records_frame(requests), SLO(1.0, 0.15))
    assert summary["finished"] == 16
    assert summary["ttft_p50"] > 0 and summary["tbt_p99"] > 0


def test_malformed_requests_get_a_4xx_and_the_server_keeps_serving(url: str) -> None:
    completions = url + "/v1/completions"
    bad = [
        httpx.post(completions, content=b"{not json"),
        httpx.post(completions, json={"prompt": {"a": 1}}),
        httpx.post(completions, json={"prompt": "hi", "max_tokens": "ten"}),
        httpx.post(completions, json={"prompt": [1, 2, 100000]}),
        httpx.post(completions, json={"prompt": [1] * 2040, "max_tokens": 20}),
        httpx.post(completions, json={"prompt": ["a", "b"]}),
        httpx.post(completions, json={"prompt": "hi", "n": 2}),
        httpx.post(url + "/v1/chat/completions", json={"messages": []}),
    ]
    for response in bad:
        assert response.status_code == 400, response.text
        assert response.json()["error"]["message"]
    unknown = httpx.post(completions, json={"prompt": "hi", "model": "gpt-9"})
    assert unknown.status_code == 404
    assert httpx.get(url + "/health").status_code == 200
    requests, errors = _load(url, num_requests=4)
    assert errors == {} and all(r.finished for r in requests)


def test_text_chat_and_non_streaming_replies(url: str) -> None:
    models = httpx.get(url + "/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["tiny"]
    reply = httpx.post(url + "/v1/completions", json={"prompt": "héllo", "max_tokens": 5}).json()
    assert len(reply["choices"][0]["text"]) == 5 and reply["choices"][0]["finish_reason"] == "length"
    assert reply["usage"] == {"prompt_tokens": 6, "completion_tokens": 5, "total_tokens": 11}
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 3}
    reply = httpx.post(url + "/v1/chat/completions", json=chat).json()
    assert reply["object"] == "chat.completion" and len(reply["choices"][0]["message"]["content"]) == 3
    events = []
    body = {**chat, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert sum(1 for c in chunks if c["choices"] and "content" in c["choices"][0]["delta"]) == 3
    assert chunks[-1]["usage"]["completion_tokens"] == 3


def test_one_slot_serialises_requests_and_the_wait_for_it_counts_in_ttft(url: str) -> None:
    workload = make_workload(WORKLOAD, model="tiny", num_requests=4, rate=1000.0, arrival="fixed", seed=3)
    result = run_openai(workload, url, model="tiny", max_concurrency=1, timeout=30)
    assert result.errors == {} and set(result.send_lag) == {r.id for r in result.requests}
    ordered = sorted(result.requests, key=lambda r: r.arrival)
    for before, after in zip(ordered, ordered[1:], strict=False):  # one in flight: each starts after the last ends
        assert after.arrival < before.finish_time < after.token_times[0]
    scheduled = {spec.request_id: spec.arrival for spec in workload.requests}
    for request in result.requests:  # the record's arrival is when the client took the request up
        assert request.arrival == pytest.approx(scheduled[request.id] + result.send_lag[request.id])
    assert 0 <= result.client_stats()["send_lag_p99"] < ordered[-1].finish_time


@pytest.mark.parametrize("system", ["vllm", "sarathi"])
def test_baseline_systems_serve_too(system: str) -> None:
    with serving(_config(system), LiveOptions(num_blocks=64)) as base:
        requests, errors = _load(base, num_requests=6)
    assert errors == {} and all(len(r.token_times) == 12 for r in requests)


def test_the_serve_command_listens_until_stopped() -> None:
    with ascbench_serve("--system", "sarathi", "--instances", "1", "--kv-blocks", "32") as base:
        reply = httpx.post(f"{base}/v1/completions", json={"prompt": [5, 6, 7], "max_tokens": 4})
    assert reply.json()["usage"]["completion_tokens"] == 4


def test_the_loadgen_command_reports_a_summary(url: str) -> None:
    from typer.testing import CliRunner

    from ascendra.harness.cli.main import app

    args = ["loadgen", "--endpoint", url, "--workload", WORKLOAD, "--model", "tiny", "--served-model", "tiny"]
    result = CliRunner().invoke(app, [*args, "--rate", "20", "--num-requests", "6", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["summary"]["finished"] == 6 and out["summary"]["failed"] == 0 and out["errors"] == {}
    assert 0 <= out["summary"]["send_lag_p99"] < out["summary"]["duration_s"]
    bad = CliRunner().invoke(app, ["loadgen", "--endpoint", "nope", "--workload", WORKLOAD, "--model", "tiny"])
    assert bad.exit_code == 2


@pytest.mark.parametrize("system", ["openai", "vllm-engine"])
def test_serve_refuses_systems_that_are_clients_of_other_engines(system):
    # The old system names are backends now; serve runs a system on the engine backend, never on those.
    from typer.testing import CliRunner

    import ascendra.harness.cli.main  # noqa: F401
    from ascendra.harness.cli.app import app

    result = CliRunner().invoke(app, ["serve", "--system", system, "--model", "tiny"])
    assert result.exit_code == 2, result.output
    assert f"--system {system} and --backend engine contradict each other" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
