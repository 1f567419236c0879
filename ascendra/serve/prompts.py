"""Text <-> token ids for models served without a tokenizer (the tiny model, dummy weights).

Deterministic and documented so that a client can predict token counts: a text prompt is encoded as UTF-8 and
every byte is one token id (0..255), so its length in tokens is its length in bytes. An output token id is shown
as one printable ASCII character, ``chr(32 + id % 95)``: every streamed token is exactly one non-empty character,
so clients that count tokens by chunks or by characters count right. The mapping is not invertible (it does not
need to be: outputs of dummy weights carry no meaning).
"""

from __future__ import annotations

BYTE_VOCAB = 256


def encode_text(text: str, vocab_size: int) -> list[int]:
    """The token ids of ``text``: its UTF-8 bytes. Needs a vocabulary of at least 256 ids."""
    if vocab_size < BYTE_VOCAB:
        raise ValueError(f"text prompts need a vocabulary of at least {BYTE_VOCAB} ids, the model has {vocab_size}")
    return list(text.encode("utf-8"))


def token_text(token_id: int) -> str:
    """The one printable character standing for an output token."""
    return chr(32 + token_id % 95)
