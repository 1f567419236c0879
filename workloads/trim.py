"""Fitting requests into the model's context: scale long ones down instead of dropping them."""

from __future__ import annotations

import numpy as np


def trim_to_fit(prompt: np.ndarray, output: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Requests with prompt + output > ``max_len`` get both sides scaled by the same factor ``max_len / total``
    (rounded down, each kept >= 1), so the prompt/output ratio survives and prompt + output <= ``max_len``.

    Dropping them instead would silently bias a workload towards short requests. Returns the new prompt and
    output arrays and a boolean mask of the requests that were trimmed.
    """
    if max_len < 2:
        raise ValueError("max_len must leave room for one prompt and one output token")
    prompt = np.asarray(prompt, dtype=np.int64)
    output = np.asarray(output, dtype=np.int64)
    total = prompt + output
    trimmed = total > max_len
    safe_total = np.maximum(total, 1)
    # Integer arithmetic: floor(x * max_len / total) exactly, no float rounding.
    new_prompt = np.where(trimmed, np.maximum(1, prompt * max_len // safe_total), prompt)
    new_output = np.where(trimmed, np.maximum(1, output * max_len // safe_total), output)
    # The floors sum to <= max_len; lifting one side from 0 to 1 only happens when the other side's share exceeds
    # max_len - 1, so its floor is at most max_len - 1 and the sum still fits.
    return new_prompt, new_output, trimmed
