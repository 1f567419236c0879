"""Offline token counters for each served model, so dataset lengths are measured in the model's own tokens.

Counts are of the text alone (no special tokens); ``bos`` is the number of tokens the model's tokenizer puts in
front of a prompt (Llama-3 and Mistral add a BOS token, Qwen does not), which the ShareGPT loader adds to each
prompt length because the engine prefills it too. The ``tiny`` test model reuses the Llama-3 tokenizer: its ids
would be taken modulo its 512-entry vocabulary, which leaves every length unchanged. Llama-3-70B and
Qwen2.5-14B share their family's tokenizer exactly. A model without a counter of its own (another table model or
a ``config.json``) is counted with the counter of the model whose vocabulary size is closest (ratio-wise:
Llama-2's and Yi's SentencePiece vocabularies go to Mistral's), with a notice on stderr: its lengths are then an
approximation.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import numpy as np

from ascendra.errors import UserError
from ascendra.models import get_model


class TokenCounter(Protocol):
    """Counts the tokens of many texts at once; ``name`` identifies the vocabulary in cache keys."""

    name: str
    bos: int

    def count(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class QuicktokCounter:
    """A tiktoken-style BPE vocabulary shipped inside the ``quicktok-v1`` wheel (llama3, qwen3)."""

    encoding: str
    bos: int

    @property
    def name(self) -> str:
        return f"quicktok:{self.encoding}"

    def count(self, texts: Sequence[str]) -> np.ndarray:
        import quicktok

        if not texts:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(quicktok.count_batch(quicktok.get_encoding(self.encoding), list(texts)), dtype=np.int64)


@dataclass(frozen=True)
class MistralCounter:
    """Mistral-7B-Instruct-v0.2's SentencePiece vocabulary (mistral-common's v1 tokenizer, 32,000 entries)."""

    bos: int = 1
    name: str = "mistral-common:v1"

    def count(self, texts: Sequence[str]) -> np.ndarray:
        processor = _sentencepiece_v1()
        if not texts:
            return np.zeros(0, dtype=np.int64)
        ids = processor.encode(list(texts), num_threads=0)
        return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))


@cache
def _sentencepiece_v1():
    """The SentencePiece model file that mistral-common ships, loaded once (mistral-common encodes it the same
    way, one text at a time; calling SentencePiece directly lets it encode a batch on all cores)."""
    try:
        import sentencepiece
        from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

        path = MistralTokenizer.v1().instruct_tokenizer.tokenizer.file_path
    except ImportError as exc:
        raise UserError(
            f"the mistral-7b tokenizer needs mistral-common with sentencepiece ({exc.name} is missing): "
            "pip install 'mistral-common[sentencepiece]'"
        ) from None
    return sentencepiece.SentencePieceProcessor(model_file=str(path))


_BY_MODEL: dict[str, TokenCounter] = {
    "llama-3.1-8b": QuicktokCounter("llama3", bos=1),
    "tiny": QuicktokCounter("llama3", bos=1),
    "qwen-14b": QuicktokCounter("qwen3", bos=0),
    "mistral-7b": MistralCounter(),
    "llama-3-70b": QuicktokCounter("llama3", bos=1),
    "qwen2.5-14b": QuicktokCounter("qwen3", bos=0),
}
#: The models whose own tokenizer a model without one may borrow (``tiny`` reuses Llama-3's).
_FAMILIES: tuple[str, ...] = ("llama-3.1-8b", "qwen-14b", "mistral-7b")


def token_counter(model: str) -> TokenCounter:
    """The offline token counter of a model from ascendra.models or a ``config.json`` path (unknown model ->
    UserError); a model without its own borrows the closest family's (see the module docstring)."""
    spec = get_model(model)
    counter = _BY_MODEL.get(model)
    if counter is not None:
        return counter
    family = closest_family(spec.vocab)
    _notice(model, family, spec.vocab)
    return _BY_MODEL[family]


def closest_family(vocab: int) -> str:
    """The model in ``_FAMILIES`` whose vocabulary size is nearest ``vocab`` by ratio."""
    return min(_FAMILIES, key=lambda name: abs(math.log(vocab / get_model(name).vocab)))


@cache
def _notice(model: str, family: str, vocab: int) -> None:
    """Say once per model that its lengths are counted with another model's tokenizer."""
    print(
        f"ascbench: notice: no tokenizer is known for {model}; counting its tokens with {family}'s "
        f"(closest vocabulary: {get_model(family).vocab:,} vs {vocab:,} entries)",
        file=sys.stderr,
    )
