"""Proportional trimming: hand-computed cases and the invariants every trimmed request must satisfy."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from workloads.trim import trim_to_fit


def test_hand_computed_cases() -> None:
    prompt_in, output_in = np.array([3000, 100, 10000, 1, 4096]), np.array([1000, 50, 1, 9000, 4096])
    prompt, output, trimmed = trim_to_fit(prompt_in, output_in, 2048)
    # 4000 -> factor 0.512: 1536 + 512. 10001 -> 2047.8 rounds down to 2047, output 0.2 lifted to 1.
    # 9001 -> prompt 0.2 lifted to 1, output 2047. 8192 -> exactly half each.
    assert prompt.tolist() == [1536, 100, 2047, 1, 1024]
    assert output.tolist() == [512, 50, 1, 2047, 1024]
    assert trimmed.tolist() == [True, False, True, True, True]


def test_fitting_requests_are_untouched() -> None:
    prompt, output, trimmed = trim_to_fit(np.array([2000, 1]), np.array([48, 2047]), 2048)
    assert prompt.tolist() == [2000, 1] and output.tolist() == [48, 2047] and not trimmed.any()


@given(
    st.lists(st.tuples(st.integers(1, 200_000), st.integers(1, 200_000)), min_size=1, max_size=50),
    st.integers(2, 32_768),
)
def test_invariants(pairs: list[tuple[int, int]], max_len: int) -> None:
    prompt = np.array([p for p, _ in pairs])
    output = np.array([o for _, o in pairs])
    new_prompt, new_output, trimmed = trim_to_fit(prompt, output, max_len)
    assert np.all(new_prompt + new_output <= max_len)
    assert np.all(new_prompt >= 1) and np.all(new_output >= 1)
    assert np.array_equal(trimmed, prompt + output > max_len)
    assert np.all(new_prompt <= prompt) and np.all(new_output <= output)
    # The same factor on both sides: each side is within one token (the rounding) of its exact share.
    share = max_len / (prompt + output)
    assert np.all(np.abs(new_prompt[trimmed] - prompt[trimmed] * share[trimmed]) < 1 + 1e-9)
    assert np.all(np.abs(new_output[trimmed] - output[trimmed] * share[trimmed]) < 1 + 1e-9)
