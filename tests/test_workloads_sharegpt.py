"""ShareGPT: reading truncated JSON, the paper's and vLLM's preprocessing rules, and the on-disk length cache."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ascendra.errors import UserError
from workloads import registry
from workloads.sharegpt import conversations_of, packaged_sharegpt_path, preprocess, read_sharegpt_file


@dataclass(frozen=True)
class Whitespace:
    """A fake tokenizer: one token per whitespace-separated word, so hand-computed lengths are obvious."""

    bos: int = 0
    name: str = "whitespace"

    def count(self, texts: list[str]) -> np.ndarray:
        return np.array([len(t.split()) for t in texts], dtype=np.int64)


def words(n: int) -> str:
    return " ".join(["w"] * n)


def record(*messages: str) -> dict:
    return {"id": "x", "conversations": [{"from": "human", "value": m} for m in messages]}


# ---------------------------------------------------------------- reading


def test_truncated_file_keeps_every_complete_record(tmp_path: Path) -> None:
    complete = json.dumps([record("a", "b"), record("c", "d", "e"), record("f", "g")], indent=2)
    cut = complete[: complete.rindex('"g"') + 2]  # inside the last record's last string
    path = tmp_path / "cut.json"
    path.write_text(cut)
    assert read_sharegpt_file(path) == [["a", "b"], ["c", "d", "e"]]


@pytest.mark.parametrize("keep", [0, 1, 5, 20, 35, -1])
def test_truncation_anywhere_in_the_last_record(tmp_path: Path, keep: int) -> None:
    second = json.dumps(record("c", "d"))
    path = tmp_path / "cut.json"
    path.write_text("[" + json.dumps(record("a", "b")) + ",\n" + second[:keep])
    assert read_sharegpt_file(path) == [["a", "b"]]


def test_whole_file_and_malformed_files(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps([record("a", "b")]))
    assert read_sharegpt_file(good) == [["a", "b"]]
    broken = tmp_path / "broken.json"
    broken.write_text('[{"conversations": []}, {"conversations": [}], {"conversations": []}]')
    with pytest.raises(UserError, match="malformed JSON"):
        read_sharegpt_file(broken)
    not_array = tmp_path / "object.json"
    not_array.write_text('{"conversations": []}')
    with pytest.raises(UserError, match="JSON array"):
        read_sharegpt_file(not_array)
    bad_record = tmp_path / "record.json"
    bad_record.write_text('[{"conversations": [{"from": "human"}]}]')
    with pytest.raises(UserError, match="record 0 is malformed"):
        read_sharegpt_file(bad_record)


def test_packaged_copy_has_17671_complete_conversations() -> None:
    conversations = read_sharegpt_file(packaged_sharegpt_path())
    assert len(conversations) == 17_671
    assert sum(len(c) >= 3 for c in conversations) == 13_789


def test_hub_records_parse_like_the_file(tmp_path: Path) -> None:
    """The hub path goes through `datasets`; on a local JSON file it must yield the same conversations."""
    pytest.importorskip("datasets", reason="the hub path needs the optional datasets package")
    from workloads.hub import load_json_records

    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps([record("a", "b", "c"), record("d", "e")]))
    assert conversations_of(load_json_records(str(path))) == [["a", "b", "c"], ["d", "e"]]


# ---------------------------------------------------------------- preprocessing


def test_distserve_prompt_is_first_k_messages_and_output_message_k() -> None:
    conversation = [words(5), words(4), words(6)]
    seen = set()
    for seed in range(40):
        pairs = preprocess([conversation], Whitespace(), "distserve", seed)
        (k,) = pairs.k.tolist()
        seen.add(k)
        assert (pairs.prompt[0], pairs.output[0]) == {1: (5, 4), 2: (9, 6)}[k]
    assert seen == {1, 2}


def test_distserve_k_is_uniform_over_1_to_messages_minus_1() -> None:
    conversations = [[words(5)] * 5] * 4000
    pairs = preprocess(conversations, Whitespace(), "distserve", seed=11)
    counts = np.bincount(pairs.k, minlength=5)[1:]
    assert counts.sum() == 4000
    assert np.all(np.abs(counts / 4000 - 0.25) < 0.03)


def test_distserve_filters() -> None:
    conversations = [
        [words(10), words(10)],  # 0: fewer than 3 messages
        ["hi", "yo", "ok"],  # 1: both sides < 4 tokens for any k
        ["hi", words(5), "x"],  # 2: one short side only: kept for any k
        [words(1500)] * 3,  # 3: always >= 2048 in total
        [words(1024)] * 3,  # 4: k=1 gives exactly 2048: dropped; k=2 larger: dropped
        [words(1024), words(1023), words(1)],  # 5: k=1 gives 2047: kept; k=2 gives 2048: dropped
    ]
    kept_5 = 0
    for seed in range(12):
        pairs = preprocess(conversations, Whitespace(), "distserve", seed)
        kept = dict(zip(pairs.conversation.tolist(), pairs.k.tolist(), strict=True))
        assert 2 in kept and not {0, 1, 3, 4} & kept.keys()
        assert kept.get(5, 1) == 1
        kept_5 += 5 in kept
        assert np.all(pairs.prompt + pairs.output < 2048)
    assert 0 < kept_5 < 12


def test_distserve_seed_matters_and_is_reproducible() -> None:
    conversations = [[words(i % 7 + 1)] * (i % 6 + 3) for i in range(300)]
    a = preprocess(conversations, Whitespace(), "distserve", 1)
    b = preprocess(conversations, Whitespace(), "distserve", 1)
    c = preprocess(conversations, Whitespace(), "distserve", 2)
    np.testing.assert_array_equal(a.k, b.k)
    assert not np.array_equal(a.k, c.k)


def test_vllm_first_turn_rules() -> None:
    conversations = [
        [words(10)],  # one message: dropped
        [words(10), words(20), words(30)],  # kept as (10, 20)
        [words(3), words(20)],  # prompt < 4
        [words(20), words(3)],  # output < 4
        [words(1025), words(4)],  # prompt > 1024
        [words(1024), words(1024)],  # total 2048: kept
        [words(1024), words(1025)],  # total 2049: dropped
    ]
    pairs = preprocess(conversations, Whitespace(), "vllm", seed=1)
    assert pairs.conversation.tolist() == [1, 5]
    assert pairs.prompt.tolist() == [10, 1024]
    assert pairs.output.tolist() == [20, 1024]


def test_bos_is_added_to_prompts_only() -> None:
    pairs = preprocess([[words(10), words(20)]], Whitespace(bos=1), "vllm", seed=1)
    assert (pairs.prompt[0], pairs.output[0]) == (11, 20)


def test_unknown_preprocessing() -> None:
    with pytest.raises(UserError, match="unknown ShareGPT preprocessing"):
        preprocess([], Whitespace(), "sarathi", 1)


# ---------------------------------------------------------------- pool and cache


def test_json_file_workload_is_cached_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("ASCENDRA_CACHE_DIR", str(cache))
    path = tmp_path / "mine.json"
    path.write_text(json.dumps([record("one two three four", "five six seven eight", "nine ten")] * 20))
    registry._sharegpt_pool.cache_clear()
    first = registry.load_pool(str(path), seed=3)
    assert first.info["from_cache"] is False and len(first) == 20
    assert len(list(cache.glob("sharegpt-*.npz"))) == 1
    registry._sharegpt_pool.cache_clear()
    second = registry.load_pool(str(path), seed=3)
    assert second.info["from_cache"] is True
    np.testing.assert_array_equal(first.prompt, second.prompt)
    np.testing.assert_array_equal(first.output, second.output)
    # A different seed or tokenizer is a different entry; nothing is left half-written.
    registry.load_pool(str(path), seed=4)
    registry.load_pool(str(path), seed=3, model="qwen-14b")
    assert len(list(cache.glob("sharegpt-*.npz"))) == 3
    assert not list(cache.glob("*.tmp"))


def test_llama_lengths_of_a_known_text() -> None:
    """The real tokenizer path: Llama-3 encodes 'Hello world' as two tokens, plus BOS for the prompt."""
    from workloads.tokenizers import token_counter

    counter = token_counter("llama-3.1-8b")
    assert counter.count(["Hello world", ""]).tolist() == [2, 0]
    assert counter.bos == 1
    assert token_counter("tiny") == counter


def test_mistral_counts_match_mistral_common() -> None:
    """The batch SentencePiece path must count exactly what mistral-common's own tokenizer encodes."""
    pytest.importorskip("sentencepiece", reason="the mistral-7b tokenizer needs sentencepiece")
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    from workloads.tokenizers import token_counter

    texts = ["Hello world", "The quick brown fox jumps over the lazy dog.\nNew line", "日本語 🚀 code: x = 1"]
    reference = MistralTokenizer.v1().instruct_tokenizer.tokenizer
    expected = [len(reference.encode(t, bos=False, eos=False)) for t in texts]
    counter = token_counter("mistral-7b")
    assert counter.count(texts).tolist() == expected
    assert counter.bos == 1 and expected[0] == 2


def test_hub_names_use_the_hub_loaders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sharegpt-hub and arxiv-hub go through the same preprocessing, tokenising and caching as local sources
    (the network fetch itself is replaced here: this machine is offline)."""
    from workloads import hub

    monkeypatch.setenv("ASCENDRA_CACHE_DIR", str(tmp_path))
    records = [record("Hello world again", "one two three four five", "x")] * 5 + [record("a", "b")]
    monkeypatch.setattr(hub, "sharegpt_hub_records", lambda: records)
    monkeypatch.setattr(hub, "arxiv_hub_texts", lambda split="test": (["Hello world"] * 3, ["Hello"] * 3))
    registry._sharegpt_pool.cache_clear()
    registry._arxiv_hub_pool.cache_clear()
    try:
        pool = registry.load_pool("sharegpt-vllm-hub")
        assert pool.info["num_conversations"] == 6
        assert pool.prompt.tolist() == [4] * 5 and pool.output.tolist() == [5] * 5  # BOS + 3 words; "a" -> "b" dropped
        arxiv = registry.load_pool("arxiv-hub")
        assert arxiv.prompt.tolist() == [3] * 3 and arxiv.output.tolist() == [1] * 3
        assert len(list(tmp_path.glob("*.npz"))) == 2
    finally:
        registry._sharegpt_pool.cache_clear()
        registry._arxiv_hub_pool.cache_clear()
