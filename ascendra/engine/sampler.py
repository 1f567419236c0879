"""Next-token sampling: greedy (temperature 0) or temperature sampling from a seeded generator, and a request's
own sampling (``ascendra.sampling``: temperature, top-p, per-token seeds, log-probabilities) where it has one."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ascendra.errors import UserError
from ascendra.request import Request
from ascendra.sampling import Sampling

#: Spreads a request's seed over its token indices (any odd constant would do; the seeds must only differ).
_SEED_STRIDE = 1_000_003


class Sampler:
    """Draws one token per logits row. Benchmarks ignore EOS, so there is no stop logic here."""

    def __init__(self, temperature: float = 0.0, seed: int = 0, device: str | torch.device = "cpu") -> None:
        if not (isinstance(temperature, int | float) and math.isfinite(temperature) and temperature >= 0):
            raise UserError(f"temperature must be a finite number >= 0, got {temperature!r}")
        self.temperature = float(temperature)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def sample(self, logits: torch.Tensor, requests: Sequence[Request] = ()) -> list[int]:
        """Token ids for ``logits`` [N, vocab] (fp32); row i is ``requests[i]``'s when given. Rows of requests with
        their own ``sampling`` are drawn by it, one by one; the others, batched, by this sampler."""
        own = [i for i, request in enumerate(requests) if request.sampling is not None]
        if not own:
            return self._default(logits)
        tokens = [0] * logits.shape[0]
        rest = [i for i in range(logits.shape[0]) if requests[i].sampling is None]
        for i, token in zip(rest, self._default(logits[rest]), strict=True):
            tokens[i] = token
        for i in own:
            request = requests[i]
            assert request.sampling is not None
            tokens[i] = draw(logits[i], request.sampling, len(request.output_ids))
        return tokens

    def _default(self, logits: torch.Tensor) -> list[int]:
        if logits.shape[0] == 0:
            return []
        if self.temperature == 0.0:
            return logits.argmax(dim=-1).tolist()
        probs = torch.softmax(logits.float() / self.temperature, dim=-1)
        return torch.multinomial(probs, 1, generator=self.generator)[:, 0].tolist()


def draw(row: torch.Tensor, sampling: Sampling, index: int) -> int:
    """Output token ``index`` of a request with ``sampling``, from its logits ``row`` [vocab]; records its
    log-probabilities when asked. On the CPU: one row, and a CPU generator seeded by (seed, index)."""
    row = row.detach().float().cpu()
    if sampling.temperature == 0.0:
        token = int(row.argmax())
    else:
        probs = torch.softmax(row / sampling.temperature, dim=-1)
        if sampling.top_p < 1.0:  # the smallest set of most likely tokens whose mass reaches top_p
            sorted_probs, order = probs.sort(descending=True)
            keep = sorted_probs.cumsum(0) - sorted_probs < sampling.top_p  # always keeps the most likely
            probs = torch.zeros_like(probs).scatter_(0, order[keep], sorted_probs[keep])
        generator = torch.Generator().manual_seed((sampling.seed * _SEED_STRIDE + index) % 2**64)
        token = int(torch.multinomial(probs, 1, generator=generator))
    if sampling.top_logprobs is not None:
        logprobs = torch.log_softmax(row, dim=-1)
        top = torch.topk(logprobs, sampling.top_logprobs)
        alternatives = tuple(zip(top.indices.tolist(), top.values.tolist(), strict=True))
        sampling.logprobs.append((float(logprobs[token]), alternatives))
    return token
