"""The request spec: what a workload hands to a serving system, before any serving happens."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request: when it arrives (seconds from the start), how long its prompt is and how many tokens it must
    generate (benchmarks ignore EOS, so the output length is fixed). Prompt token ids are kept when the source
    has text, so a real engine can run the exact prompt."""

    request_id: int
    arrival: float
    prompt_tokens: int
    output_tokens: int
    prompt_ids: tuple[int, ...] | None = None


@dataclass(slots=True)
class Workload:
    """A named, seeded list of request specs sorted by arrival, plus facts about how it was built."""

    name: str
    requests: list[RequestSpec]
    num_trimmed: int = 0
    meta: dict[str, object] = field(default_factory=dict)
