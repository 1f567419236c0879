"""A workload: the request specs (``ascendra.request.RequestSpec``) a serving system is given, and how they were
built."""

from __future__ import annotations

from dataclasses import dataclass, field

from ascendra.request import RequestSpec


@dataclass(slots=True)
class Workload:
    """A named, seeded list of request specs sorted by arrival, plus facts about how it was built."""

    name: str
    requests: list[RequestSpec]
    num_trimmed: int = 0
    meta: dict[str, object] = field(default_factory=dict)
