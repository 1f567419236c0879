"""A served request's own sampling: how its tokens are drawn and which log-probabilities it reports.

Benchmarks and live runs leave ``Request.sampling`` None and get the engine's default (greedy); the server sets it
from a request's ``temperature``, ``top_p``, ``seed`` and ``logprobs``. It lives on the request, not in the engine,
so it moves with the request between instances. Draws are seeded per token (the request's ``seed`` and the token's
index), not from a generator that advances: a request recomputed after a preemption or moved to another instance
draws the same tokens, and no per-request state has to be kept or freed anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: One output token's log-probabilities: the sampled token's, and the most likely tokens' as (id, logprob), best
#: first.
TokenLogprobs = tuple[float, tuple[tuple[int, float], ...]]


@dataclass(slots=True)
class Sampling:
    """Temperature (0: greedy) and nucleus (``top_p``) sampling seeded by ``seed``; with ``top_logprobs`` set, the
    engine appends one ``TokenLogprobs`` per output token to ``logprobs`` (from the model's distribution, before
    temperature and top-p, as vLLM reports them), listing that many alternatives."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    top_logprobs: int | None = None
    logprobs: list[TokenLogprobs] = field(default_factory=list)
