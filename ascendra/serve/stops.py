"""Stop sequences and stop token ids: where a served request ends before ``max_tokens``, and which of its tokens a
client may be shown yet.

A request stops at the first output token whose id is a stop id, or once its output text ends with a stop string;
the stop itself (that token, or the tokens spelling the string) is never shown, as the OpenAI API does with stop
strings. Streaming needs one more thing: a token that may be the start of a stop string is held back until the
next tokens show whether the string follows (then it is never shown) or not (then it is). Matching on the held
tokens alone is enough: any suffix of the output that could still become a stop string is held.

Text is the server's (``ascendra.serve.prompts.token_text``: one character per token), so a stop string always
starts at a token boundary.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from ascendra.serve.prompts import token_text

T = TypeVar("T")


class Stops(Generic[T]):
    """One request's stops, fed its output tokens in order (``feed``), each with what is shown for it (``T``)."""

    def __init__(self, strings: Iterable[str] = (), ids: Iterable[int] = ()) -> None:
        self.strings = tuple(strings)
        self.ids = frozenset(ids)
        self._held: list[tuple[T, str]] = []

    def feed(self, token_id: int, shown: T) -> tuple[list[T], bool]:
        """The next output token: returns what may be shown now, in order, and whether the request stops here."""
        if token_id in self.ids:
            return self.flush(), True
        held = self._held
        held.append((shown, token_text(token_id)))
        text = "".join(t for _, t in held)
        for stop in self.strings:
            if text.endswith(stop):
                before = len(text) - len(stop)
                kept, length = [], 0
                for item, piece in held:
                    if length >= before:
                        break
                    kept.append(item)
                    length += len(piece)
                held.clear()
                return kept, True
        # Hold the longest end of the text that may still grow into a stop string.
        keep = next((n for n in range(len(text), 0, -1) if any(s.startswith(text[-n:]) for s in self.strings)), 0)
        release, length = 0, len(text)
        while length > keep:
            length -= len(held[release][1])
            release += 1
        shown_now = [item for item, _ in held[:release]]
        del held[:release]
        return shown_now, False

    def flush(self) -> list[T]:
        """Everything held back: the request ended without completing a stop string."""
        out = [item for item, _ in self._held]
        self._held.clear()
        return out
