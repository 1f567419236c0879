"""Next-token sampling: greedy (temperature 0) or temperature sampling from a seeded generator."""

from __future__ import annotations

import math

import torch

from ascendra.errors import UserError


class Sampler:
    """Draws one token per logits row. Benchmarks ignore EOS, so there is no stop logic here."""

    def __init__(self, temperature: float = 0.0, seed: int = 0, device: str | torch.device = "cpu") -> None:
        if not (isinstance(temperature, int | float) and math.isfinite(temperature) and temperature >= 0):
            raise UserError(f"temperature must be a finite number >= 0, got {temperature!r}")
        self.temperature = float(temperature)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def sample(self, logits: torch.Tensor) -> list[int]:
        """Token ids for ``logits`` [N, vocab] (fp32)."""
        if logits.shape[0] == 0:
            return []
        if self.temperature == 0.0:
            return logits.argmax(dim=-1).tolist()
        probs = torch.softmax(logits.float() / self.temperature, dim=-1)
        return torch.multinomial(probs, 1, generator=self.generator)[:, 0].tolist()
