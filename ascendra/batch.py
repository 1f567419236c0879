"""A batch: what one forward pass of an instance computes, as schedulers build it and executors cost it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ascendra.request import Request


@dataclass(slots=True)
class BatchItem:
    """``num_tokens`` new tokens of ``request`` on top of ``context`` tokens already in its KV cache.

    A prefill item is a (possibly partial) prompt chunk; a decode item is exactly one token."""

    request: Request
    num_tokens: int
    context: int
    is_prefill: bool


@dataclass(slots=True)
class Batch:
    """The items of one iteration. Counters are kept as items are added so hot paths never re-scan."""

    items: list[BatchItem] = field(default_factory=list)
    num_prefill_tokens: int = 0
    num_decodes: int = 0

    def add(self, request: Request, num_tokens: int, is_prefill: bool) -> None:
        self.items.append(BatchItem(request, num_tokens, request.num_computed, is_prefill))
        if is_prefill:
            self.num_prefill_tokens += num_tokens
        else:
            self.num_decodes += 1

    @property
    def num_tokens(self) -> int:
        return self.num_prefill_tokens + self.num_decodes

    @property
    def kind(self) -> str:
        """'prefill', 'decode' or 'mixed': the performance model fits one regression per kind."""
        if self.num_decodes == 0:
            return "prefill"
        return "decode" if self.num_prefill_tokens == 0 else "mixed"

    def composition(self) -> tuple[list[tuple[int, int]], list[int]]:
        """(prefill chunks as (tokens, prior context), decode contexts): the form cost and performance models
        and batch logs read, fixed at scheduling time (the items' requests keep changing afterwards)."""
        prefills: list[tuple[int, int]] = []
        decodes: list[int] = []
        for item in self.items:
            if item.is_prefill:
                prefills.append((item.num_tokens, item.context))
            else:
                decodes.append(item.context)
        return prefills, decodes

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)
