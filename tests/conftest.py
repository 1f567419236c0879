"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings

#: Property tests draw the same examples on every run by default, so that a rare failing case found at random
#: cannot fail an unrelated change (CI); ``HYPOTHESIS_PROFILE=explore`` draws new examples on each run to hunt for
#: such cases (the examples it finds are kept in ``.hypothesis`` and replayed by the next explore run).
settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

#: Ray's memory monitor kills the newest worker once the *host's* memory use passes its threshold (0.95 by
#: default), which a busy shared host reaches without any fault of the test. At 0.99 it still stops a real
#: runaway (the test then fails with Ray's out-of-memory error) but not a neighbour's load.
RAY_TEST_ENV = {"RAY_memory_usage_threshold": "0.99"}
#: The tests ship small batches and token lists: a 100 MiB object store (Ray's minimum is 75 MiB) instead of
#: Ray's default 30% of host memory.
RAY_OBJECT_STORE_BYTES = 100 * 2**20


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Any]:
    """One local, dashboard-less Ray for the whole session (starting it is most of a Ray test's time), sized
    for a 2-core host; code under test that finds Ray running uses it and leaves it up."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (the dist extra)")
    saved = {name: os.environ.get(name) for name in RAY_TEST_ENV}
    os.environ.update(RAY_TEST_ENV)  # read by the raylet that ray.init starts
    ray.init(
        num_cpus=2,
        object_store_memory=RAY_OBJECT_STORE_BYTES,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
