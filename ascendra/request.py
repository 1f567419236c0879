"""A request: what a workload hands to a serving system (``RequestSpec``), and its live state inside it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ascendra.sampling import Sampling


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
    """

    spec: RequestSpec
    num_computed: int = 0
    prefill_target: int = 0
    token_times: list[float] = field(default_factory=list)
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

    def __post_init__(self) -> None:
        if self.prefill_target == 0:
            self.prefill_target = self.spec.prompt_tokens
        self.ttft_slo = self.spec.ttft_slo
        self.tbt_slo = self.spec.tbt_slo

    @property
    def id(self) -> int:
        return self.spec.request_id

    @property
    def arrival(self) -> float:
        return self.spec.arrival

    @property
    def prompt_len(self) -> int:
        return self.spec.prompt_tokens

    @property
    def output_len(self) -> int:
        return self.spec.output_tokens

    @property
    def num_generated(self) -> int:
        return len(self.token_times)

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
