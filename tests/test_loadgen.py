"""The load generator's token counting and its failure handling (no crash, failures recorded as drops)."""

from __future__ import annotations

import socket

import pytest

pytest.importorskip("aiohttp")

from ascendra.errors import UserError  # noqa: E402
from ascendra.harness.loadgen import SYNTHETIC_IDS, _chunk_tokens, behind_schedule, prompt_ids, run_openai  # noqa: E402
from ascendra.request import RequestSpec  # noqa: E402


def test_token_counting_prefers_usage_then_logprobs_then_text() -> None:
    assert _chunk_tokens({"choices": [{"text": "ab"}], "usage": {"completion_tokens": 5}}, 3) == 2
    assert _chunk_tokens({"choices": [{"text": "ab", "logprobs": {"tokens": ["a", "b"]}}]}, 0) == 2
    assert _chunk_tokens({"choices": [{"text": "abc"}]}, 0) == 1
    assert _chunk_tokens({"choices": [{"delta": {"content": "x"}}]}, 0) == 1
    assert _chunk_tokens({"choices": [{"delta": {"role": "assistant"}}]}, 0) == 0
    assert _chunk_tokens({"choices": [], "usage": {"completion_tokens": 9}}, 0) == 0


def test_prompts_are_the_workloads_ids_or_deterministic_synthetic_ones() -> None:
    assert prompt_ids(RequestSpec(0, 0.0, 3, 1, (7, 8, 9))) == [7, 8, 9]
    synthetic = prompt_ids(RequestSpec(4, 0.0, 50, 1))
    assert len(synthetic) == 50 and synthetic == prompt_ids(RequestSpec(4, 1.0, 50, 2))
    assert all(SYNTHETIC_IDS[0] <= i < SYNTHETIC_IDS[1] for i in synthetic)


def _specs(n: int) -> list[RequestSpec]:
    return [RequestSpec(i, 0.01 * i, 4, 3) for i in range(n)]


def test_an_unreachable_server_drops_every_request_with_a_reason() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    result = run_openai(_specs(3), f"http://127.0.0.1:{port}", timeout=5)
    assert all(r.dropped and not r.finished for r in result.requests)
    assert set(result.errors) == {0, 1, 2} and all("Connect" in e for e in result.errors.values())


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)  # accepts connections (in the backlog) but never replies
        result = run_openai(_specs(2), f"http://127.0.0.1:{sock.getsockname()[1]}", max_concurrency=2, timeout=0.3)
    assert all(r.dropped for r in result.requests)
    assert all("timed out" in e or "Timeout" in e for e in result.errors.values())


def test_bad_arguments_are_user_errors() -> None:
    with pytest.raises(UserError):
        run_openai(_specs(1), "127.0.0.1:8000")
    with pytest.raises(UserError):
        run_openai(_specs(1), "http://127.0.0.1:8000", max_concurrency=0)


def test_a_client_that_fell_behind_the_schedule_is_flagged() -> None:
    assert behind_schedule(0.002, 20.0) is None and behind_schedule(float("nan"), 20.0) is None
    assert behind_schedule(0.034, 20.0) == "warning: at 20 QPS the client sent requests up to 34 ms late (p99)"
