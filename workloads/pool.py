"""A source's pool of (prompt, output) lengths, and the seeded draw of a workload's requests from it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class LengthPool:
    """Every usable request a source offers: lengths in the target model's tokens, and for timestamped traces the
    arrival times in seconds (sorted, as recorded). Arrays are read-only because pools are memoised and shared."""

    prompt: np.ndarray
    output: np.ndarray
    timestamps: np.ndarray | None = None
    info: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for array in (self.prompt, self.output, self.timestamps):
            if array is not None:
                array.setflags(write=False)
        if len(self.prompt) != len(self.output):
            raise ValueError("prompt and output lengths differ in count")
        if self.timestamps is not None and len(self.timestamps) != len(self.prompt):
            raise ValueError("timestamps and lengths differ in count")

    def __len__(self) -> int:
        return len(self.prompt)


def draw_indices(pool_size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` pool rows drawn at random without replacement while the pool lasts: shuffled passes over the pool,
    the last one cut short. The draw depends only on the generator, never on the arrival rate, and a shorter
    workload is a prefix of a longer one with the same seed."""
    if pool_size <= 0:
        raise ValueError("cannot draw from an empty pool")
    passes = [rng.permutation(pool_size) for _ in range(-(-n // pool_size))]
    return np.concatenate(passes)[:n] if passes else np.zeros(0, dtype=np.int64)
