"""The parameters `ascbench serve` honours (stop strings and token ids, temperature / top-p / seed, logprobs) and
those it refuses with a 400 naming them; errors carry OpenAI's string codes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from ascendra.engine.sampler import draw  # noqa: E402
from ascendra.harness.config import RunConfig  # noqa: E402
from ascendra.harness.serving import serving  # noqa: E402
from ascendra.live.engines import LiveOptions  # noqa: E402
from ascendra.sampling import Sampling  # noqa: E402
from ascendra.serve.prompts import token_text  # noqa: E402
from ascendra.serve.stops import Stops  # noqa: E402

PROMPT = {"prompt": "hello", "max_tokens": 12}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    config = RunConfig.of(
        system="vllm", model="tiny", instances=1, workload="fixed:prompt=8,output=8", backend="engine"
    )
    with serving(config, LiveOptions(num_blocks=64)) as base:
        yield base


def complete(url: str, **body: object) -> dict:
    reply = httpx.post(url + "/v1/completions", json={**PROMPT, **body})
    assert reply.status_code == 200, reply.text
    return reply.json()


def stream_text(url: str, **body: object) -> tuple[str, list[str | None], dict]:
    """The streamed text, each chunk's finish reason and the usage chunk."""
    payload = {**PROMPT, **body, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", url + "/v1/completions", json=payload) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    texts = [c for c in chunks if c["choices"]]
    return (
        "".join(c["choices"][0]["text"] for c in texts),
        [c["choices"][0]["finish_reason"] for c in texts],
        chunks[-1],
    )


def test_a_stop_string_ends_the_request_before_it_and_is_not_shown(url: str) -> None:
    text = complete(url)["choices"][0]["text"]  # greedy: the same every time
    stop = text[4:6]
    at = text.find(stop)
    reply = complete(url, stop=[stop, "never"])
    assert reply["choices"][0]["text"] == text[:at] and reply["choices"][0]["finish_reason"] == "stop"
    assert reply["usage"]["completion_tokens"] == at + len(stop)  # the stop's own tokens were generated
    streamed, finishes, usage = stream_text(url, stop=stop)
    assert streamed == text[:at] and finishes[-1] == "stop" and usage["usage"]["completion_tokens"] == at + 2
    # A stop string that never completes holds nothing back for good, and the request runs to max_tokens.
    streamed, finishes, _ = stream_text(url, stop=text[-1] + "\u00e9")
    assert streamed == text and finishes[-1] == "length"


def test_a_stop_token_id_ends_the_request_and_is_not_shown(url: str) -> None:
    text = complete(url)["choices"][0]["text"]
    char = text[3]
    ids = [i for i in range(512) if token_text(i) == char]  # every id shown as that character
    reply = complete(url, stop_token_ids=ids)
    assert reply["choices"][0]["text"] == text[: text.index(char)]
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert reply["usage"]["completion_tokens"] == text.index(char) + 1


def test_temperature_top_p_and_seed(url: str) -> None:
    greedy = complete(url)["choices"][0]["text"]
    assert complete(url, temperature=0)["choices"][0]["text"] == greedy
    sampled = [complete(url, temperature=1.0, seed=seed)["choices"][0]["text"] for seed in (1, 1, 2)]
    assert sampled[0] == sampled[1] != sampled[2] and sampled[0] != greedy
    # A top-p below the likeliest token's probability keeps only that token: greedy, whatever the seed.
    assert complete(url, temperature=1.5, top_p=1e-6, seed=5)["choices"][0]["text"] == greedy
    streamed, _, _ = stream_text(url, temperature=1.0, seed=1)
    assert streamed == sampled[0]


def test_logprobs_of_completions_and_chat(url: str) -> None:
    choice = complete(url, max_tokens=4, logprobs=3)["choices"][0]
    logprobs = choice["logprobs"]
    assert logprobs["tokens"] == list(choice["text"]) and logprobs["text_offset"] == [0, 1, 2, 3]
    for chosen, top in zip(logprobs["token_logprobs"], logprobs["top_logprobs"], strict=True):
        assert 1 <= len(top) <= 3 and chosen == max(top.values()) <= 0  # greedy: the likeliest token
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "logprobs": True, "top_logprobs": 2}
    reply = httpx.post(url + "/v1/chat/completions", json=chat).json()
    content = reply["choices"][0]["logprobs"]["content"]
    assert "".join(c["token"] for c in content) == reply["choices"][0]["message"]["content"]
    assert all(len(c["top_logprobs"]) == 2 and c["logprob"] == c["top_logprobs"][0]["logprob"] for c in content)
    assert complete(url)["choices"][0]["logprobs"] is None


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("tools", [{"type": "function", "function": {"name": "f"}}]),
        ("tool_choice", "auto"),
        ("response_format", {"type": "json_object"}),
        ("presence_penalty", 0.5),
        ("logit_bias", {"5": 10}),
        ("n", 2),
        ("top_k", 5),
    ],
)
def test_parameters_it_cannot_honour_are_refused_by_name(url: str, param: str, value: object) -> None:
    reply = httpx.post(url + "/v1/completions", json={**PROMPT, param: value})
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == param and error["code"] == "unsupported_parameter" and param in error["message"]


def test_their_harmless_values_are_accepted(url: str) -> None:
    harmless = {"response_format": {"type": "text"}, "presence_penalty": 0, "tools": [], "n": 1, "ignore_eos": True}
    assert complete(url, **harmless)["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"seed": 1.5}, "seed"),
        ({"stop": ""}, "stop"),
        ({"stop": [1]}, "stop"),
        ({"stop_token_ids": [99999]}, "stop_token_ids"),
        ({"logprobs": 21}, "logprobs"),
        ({"logprobs": True}, "logprobs"),
        ({"max_tokens": 5000}, "max_tokens"),
    ],
)
def test_bad_values_get_a_400_naming_the_parameter_with_a_string_code(url: str, body: dict, param: str) -> None:
    reply = httpx.post(url + "/v1/completions", json={**PROMPT, **body})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == param and isinstance(error["code"], str) and error["type"] == "invalid_request_error"


def test_every_error_has_openai_shape_with_a_string_code(url: str) -> None:
    chat = {"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2}
    replies = {
        "invalid_json": httpx.post(url + "/v1/completions", content=b"{oops"),
        "model_not_found": httpx.post(url + "/v1/completions", json={**PROMPT, "model": "gpt-9"}),
        "not_found": httpx.get(url + "/v2/nothing"),
        "method_not_allowed": httpx.get(url + "/v1/completions"),
        "invalid_value": httpx.post(url + "/v1/chat/completions", json=chat),
        "context_length_exceeded": httpx.post(url + "/v1/completions", json={"prompt": [1] * 2040, "max_tokens": 20}),
    }
    for code, reply in replies.items():
        error = reply.json()["error"]
        assert 400 <= reply.status_code < 500 and error["code"] == code and error["message"], reply.text
    assert httpx.get(url + "/health").json()["status"] == "ok"


def test_stops_hold_back_what_may_start_a_stop_string() -> None:
    stops: Stops[str] = Stops(["abc"])
    ids = {c: ord(c) - 32 for c in "abxabc"}  # token_text(id) is the character
    out = [stops.feed(ids[c], c) for c in "abxab"]
    assert out == [([], False), ([], False), (["a", "b", "x"], False), ([], False), ([], False)]
    assert stops.feed(ids["c"], "c") == ([], True)  # "ab" + "c": the stop, never shown
    assert Stops(ids=[ids["x"]]).feed(ids["x"], "x") == ([], True)


def test_a_seeded_draw_depends_only_on_seed_and_index() -> None:
    logits = torch.randn(64, generator=torch.Generator().manual_seed(0))
    draws = [draw(logits, Sampling(1.0, 1.0, seed), index) for seed, index in [(3, 0), (3, 0), (3, 1), (4, 0)]]
    assert draws[0] == draws[1]
    assert draw(logits, Sampling(1.0, 0.0001, 3), 0) == int(logits.argmax())  # top-p keeps the likeliest only
    sampling = Sampling(0.0, 1.0, 0, top_logprobs=2)
    assert draw(logits, sampling, 0) == int(logits.argmax())
    ((chosen, top),) = sampling.logprobs
    assert top[0] == (int(logits.argmax()), pytest.approx(chosen)) and len(top) == 2
