"""Token counting for models without a tokenizer of their own: the closest family's, said once on stderr."""

from __future__ import annotations

from pathlib import Path

import pytest

from workloads.tokenizers import closest_family, token_counter


@pytest.mark.parametrize(
    ("vocab", "family"),
    [
        (128256, "llama-3.1-8b"),
        (152064, "qwen-14b"),
        (151936, "qwen-14b"),
        (32000, "mistral-7b"),
        (64000, "mistral-7b"),
    ],  # fmt: skip
)
def test_closest_family_by_vocabulary_ratio(vocab: int, family: str) -> None:
    assert closest_family(vocab) == family


def test_exact_family_members_need_no_notice(capsys: pytest.CaptureFixture[str]) -> None:
    assert token_counter("llama-3-70b") == token_counter("llama-3.1-8b")
    assert token_counter("qwen2.5-14b") == token_counter("qwen-14b")
    assert capsys.readouterr().err == ""


def test_a_model_without_a_tokenizer_borrows_one_with_a_notice_once(capsys: pytest.CaptureFixture[str]) -> None:
    yi = str(Path(__file__).parent / "data" / "yi-34b" / "config.json")
    assert token_counter(yi) == token_counter("mistral-7b")
    token_counter(yi)
    err = capsys.readouterr().err
    assert err.count("no tokenizer is known") == 1 and "mistral-7b" in err
    assert token_counter("llama-2-13b").name == "mistral-common:v1"
