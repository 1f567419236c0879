"""A batch: what one forward pass of an instance computes, as schedulers build it and executors cost it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ascendra.request import Request

if TYPE_CHECKING:
    from ascendra.cohort import Cohort


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
    """The work of one iteration: prefill chunks as items, decodes as a list of requests with their contexts.

    A decode is one token on top of its context, so it is kept as (request, context) in ``decodes`` and
    ``decode_contexts`` rather than as an item: a simulated iteration holds ~100 decodes, and building, costing
    and completing them is the simulator's hot path. Decodes come first in ``items`` (every policy schedules
    them before prefills). A batch of a cohort's decodes (``cohort``: every member of a simulated instance's
    ``Cohort``) holds them as the cohort's members and bases: cost models read ``decode_kv``, the contexts are
    built when read. ``num_prefill_tokens`` is kept as chunks are added so hot paths never re-scan."""

    prefills: list[BatchItem] = field(default_factory=list)
    decodes: list[Request] = field(default_factory=list)
    num_prefill_tokens: int = 0
    #: The cohort whose members are ``decodes``, as they were at its tick ``_step``; None: decodes added one by one.
    cohort: Cohort | None = None
    _contexts: list[int] | None = field(default_factory=list)
    _bases: list[int] = field(default_factory=list)
    _step: int = 0
    _kv: int = 0

    def take_cohort(self, cohort: Cohort) -> None:
        """Make the decodes of this empty batch every member of ``cohort`` (one token each)."""
        if self:
            raise ValueError("a cohort's decodes go into an empty batch")
        self.decodes, self._bases = cohort.lend()
        self.cohort = cohort
        self._contexts = None
        self._step = cohort.step
        self._kv = cohort.kv

    def add(self, request: Request, num_tokens: int, is_prefill: bool) -> None:
        """Add ``num_tokens`` of ``request`` on top of its computed tokens (a decode is exactly one)."""
        if is_prefill:
            self.prefills.append(BatchItem(request, num_tokens, request.num_computed, True))
            self.num_prefill_tokens += num_tokens
        else:
            if num_tokens != 1:
                raise ValueError(f"a decode computes one token, got {num_tokens} for request {request.id}")
            self.add_decode(request, request.num_computed)

    def add_decode(self, request: Request, context: int) -> None:
        contexts = self._contexts
        if self.cohort is not None or contexts is None:
            raise ValueError("a cohort's batch holds its members' decodes only")
        self.decodes.append(request)
        contexts.append(context)

    @property
    def decode_contexts(self) -> list[int]:
        """Tokens each decode has cached (its context), in ``decodes`` order."""
        if self._contexts is None:
            step = self._step
            self._contexts = [base + step for base in self._bases]
        return self._contexts

    @property
    def decode_kv(self) -> int:
        """Tokens cached by all decodes together (the sum of their contexts)."""
        return self._kv if self.cohort is not None else sum(self.decode_contexts)

    @property
    def num_decodes(self) -> int:
        return len(self.decodes)

    @property
    def num_tokens(self) -> int:
        return self.num_prefill_tokens + len(self.decodes)

    @property
    def items(self) -> list[BatchItem]:
        """Every item, decodes first (built on each call: for executors and tests, not hot paths)."""
        return self.decode_items() + self.prefills

    def decode_items(self) -> list[BatchItem]:
        """The decodes as items (built on each call)."""
        return [BatchItem(r, 1, c, False) for r, c in zip(self.decodes, self.decode_contexts, strict=True)]

    def requests(self) -> Iterator[Request]:
        """Every request the batch computes, in ``items`` order."""
        yield from self.decodes
        for item in self.prefills:
            yield item.request

    def computes(self, request: Request) -> bool:
        """Whether ``request`` is in the batch."""
        return any(r is request for r in self.requests())

    @property
    def kind(self) -> str:
        """'prefill', 'decode' or 'mixed': the performance model fits one regression per kind."""
        if not self.decodes:
            return "prefill"
        return "decode" if self.num_prefill_tokens == 0 else "mixed"

    def composition(self) -> tuple[list[tuple[int, int]], list[int]]:
        """(prefill chunks as (tokens, prior context), decode contexts): the form cost and performance models
        and batch logs read, fixed at scheduling time (the items' requests keep changing afterwards)."""
        return [(item.num_tokens, item.context) for item in self.prefills], list(self.decode_contexts)

    def __len__(self) -> int:
        return len(self.decodes) + len(self.prefills)

    def __bool__(self) -> bool:
        return bool(self.decodes) or bool(self.prefills)


@dataclass(slots=True)
class DecodeCounts:
    """A run of decode-only steps in counts, as a cost model prices it: ``num_decodes`` decodes with ``kv`` tokens
    cached in all at the first step (one more each per step), of which ``leaving[offset + last] = [count, bases]``
    take part in the first ``last`` steps only (their number, and their contexts at the first step less
    ``offset`` each, summed). A cohort's own ``leaving`` is such a table, offset by its tick count."""

    num_decodes: int = 0
    kv: int = 0
    leaving: dict[int, list[int]] = field(default_factory=dict)
    offset: int = 0
