"""A request: what a workload hands to a serving system (``RequestSpec``), and its live state inside it."""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ascendra.sampling import Sampling

if TYPE_CHECKING:
    from ascendra.cohort import Cohort


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request: when it arrives (seconds from the start), how long its prompt is and how many tokens it must
    generate (benchmarks ignore EOS, so the output length is fixed). Prompt token ids are kept when the source
    has text, so a real engine can run the exact prompt.

    SLOs: a request of an SLO class (``workloads.slo_classes``) carries its class name and its own TTFT/TBT SLOs
    (seconds); None means the run's SLO (the cluster's, as every policy is built with it)."""

    request_id: int
    arrival: float
    prompt_tokens: int
    output_tokens: int
    prompt_ids: tuple[int, ...] | None = None
    slo_class: str | None = None
    ttft_slo: float | None = None
    tbt_slo: float | None = None


@dataclass(eq=False, slots=True)
class Request:
    """Progress of a request through prefill and decode, and the timestamps metrics are computed from.

    KV accounting: ``num_computed`` tokens have their KV cached. A (re)started request must prefill
    ``prefill_target`` tokens (the prompt, plus every token already generated when it is recomputed after a
    preemption); the iteration that completes the prefill emits a token. In decode, each iteration feeds the
    last generated token (one new KV entry) and emits the next one. The request is done once it has generated
    ``output_len`` tokens.

    ``cancelled``: its client went away and it was taken out of its instance before finishing (served requests
    only); a request ends exactly one way: finished, ``dropped`` or ``cancelled``. ``sampling``: its own sampling
    (served requests), None for the engine's default.

    In a simulated instance, a decoding request may be a member of a ``Cohort`` (``cohort``): then it is a
    ``CohortMember``, only the cohort advances it, and its ``num_computed`` and token times follow the cohort's
    clock (token times copied from it when read).

    Token times are kept as C doubles (``array('d')``), not a list of Python floats: a run's records read
    every one of its ~400,000 token times, and copying them out is then a memory copy, not an unboxing each.
    """

    spec: RequestSpec
    num_computed: int = 0
    prefill_target: int = 0
    output_ids: list[int] = field(default_factory=list)
    first_scheduled: float | None = None
    finish_time: float | None = None
    dropped: bool = False
    cancelled: bool = False
    preemptions: int = 0
    offload_time: float | None = None
    instances: list[str] = field(default_factory=list)
    sampling: Sampling | None = None
    ttft_slo: float | None = field(init=False)
    tbt_slo: float | None = field(init=False)
    #: The spec's id and arrival, copied: read on every hot path (an attribute, not a property each time).
    id: int = field(init=False, repr=False)
    arrival: float = field(init=False, repr=False)
    cohort: Cohort | None = field(default=None, init=False, repr=False)
    #: The token times copied into the request: all of them while it is in no cohort (``token_times`` adds a
    #: cohort's ticks not copied yet).
    own_token_times: array[float] = field(default_factory=lambda: array("d"), init=False, repr=False)
    #: In a cohort: ``num_computed - cohort.step`` (constant while in it), and how much of the cohort's timeline
    #: ``own_token_times`` holds.
    _base: int = field(default=0, init=False, repr=False)
    _upto: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.prefill_target == 0:
            self.prefill_target = self.spec.prompt_tokens
        self.ttft_slo = self.spec.ttft_slo
        self.tbt_slo = self.spec.tbt_slo
        self.id = self.spec.request_id
        self.arrival = self.spec.arrival

    def respec(self, **changes: object) -> None:
        """Change fields of its spec (a client that sent it late, a server that stopped it early), keeping the
        copies of them in step."""
        self.spec = replace(self.spec, **changes)  # type: ignore[arg-type]
        self.id = self.spec.request_id
        self.arrival = self.spec.arrival

    @property
    def token_times(self) -> array[float]:
        """When each output token was emitted (the first is the first token)."""
        cohort = self.cohort
        if cohort is not None and self._upto < len(cohort.timeline):
            self.own_token_times.extend(cohort.timeline[self._upto :])
            self._upto = len(cohort.timeline)
        return self.own_token_times

    @token_times.setter
    def token_times(self, value: Iterable[float]) -> None:
        if self.cohort is not None:
            raise RuntimeError(f"request {self.id} is advanced by its cohort: leave it first")
        self.own_token_times = array("d", value)

    @property
    def first_token_time(self) -> float:
        """When its first token was emitted (it has one; emitted before it could join a cohort, so always copied
        in)."""
        return self.own_token_times[0]

    @property
    def last_token_time(self) -> float:
        """When its latest token was emitted (it has one), without copying a cohort's ticks."""
        cohort = self.cohort
        if cohort is not None and self._upto < len(cohort.timeline):
            return cohort.timeline[-1]
        return self.own_token_times[-1]

    def join_cohort(self, cohort: Cohort, base: int, upto: int) -> None:
        """Follow ``cohort``'s clock from now on (``Cohort.join``): a ``CohortMember`` until it leaves."""
        self.cohort, self._base, self._upto = cohort, base, upto
        self.__class__ = CohortMember

    def leave_cohort(self, at: int | None = None) -> None:
        """Stop following a cohort (if any), keeping what it computed and emitted up to its tick ``at`` (default:
        its latest; ticks are numbered from 1, the cohort's ``timeline[t - 1]`` ends tick ``t``)."""
        cohort = self.cohort
        if cohort is not None:
            at = cohort.step if at is None else at
            self.own_token_times.extend(cohort.timeline[self._upto : at])
            self.__class__ = Request
            self.num_computed = self._base + at
            self.cohort = None

    @property
    def prompt_len(self) -> int:
        return self.spec.prompt_tokens

    @property
    def output_len(self) -> int:
        return self.spec.output_tokens

    @property
    def num_generated(self) -> int:
        cohort = self.cohort
        if cohort is None:
            return len(self.own_token_times)
        return len(self.own_token_times) + len(cohort.timeline) - self._upto

    @property
    def in_prefill(self) -> bool:
        return self.num_computed < self.prefill_target

    @property
    def remaining_prefill(self) -> int:
        return max(0, self.prefill_target - self.num_computed)

    @property
    def never_started(self) -> bool:
        """True until the first prefill chunk is scheduled: only such requests may be offloaded."""
        return self.first_scheduled is None

    @property
    def finished(self) -> bool:
        return self.finish_time is not None

    def kv_tokens_after(self, num_new: int) -> int:
        """KV slots the request holds once ``num_new`` more tokens are computed."""
        return self.num_computed + num_new

    def advance(self, num_new: int, now: float) -> bool:
        """Account for ``num_new`` tokens computed by a batch that ended at ``now``; emit a token when the
        prefill completes or on a decode step. Returns True when the request has just finished."""
        self.num_computed += num_new
        if self.num_computed < self.prefill_target:
            return False
        self.token_times.append(now)
        if self.num_generated >= self.output_len:
            self.finish_time = now
            return True
        return False

    def preempt(self) -> None:
        """Drop the KV state; the request will recompute its prompt and all generated tokens."""
        self.num_computed = 0
        self.prefill_target = self.prompt_len + self.num_generated
        self.preemptions += 1


class CohortMember(Request):
    """A request while it is in a ``Cohort``: ``join_cohort`` makes a request one and ``leave_cohort`` a plain
    ``Request`` again (the same object). Its ``num_computed`` is its base plus the cohort's tick count, so a tick
    advances every member at once, while every other request keeps a plain attribute (read on every hot path)."""

    __slots__ = ()

    @property  # type: ignore[override]
    def num_computed(self) -> int:
        return self._base + self.cohort.step  # type: ignore[union-attr]

    @num_computed.setter
    def num_computed(self, value: int) -> None:
        raise RuntimeError(f"request {self.id} is advanced by its cohort: it leaves the cohort first")
