"""The link model: how long moving a request's KV cache between two instances takes.

A transfer of ``b`` bytes over a link takes ``latency + b / bandwidth``. Each GPU of a TP group sends its own
shard of the KV over its own link, in parallel, so a move of ``t`` tokens costs ``latency + t *
kv_bytes_per_token(tp) / bandwidth``. A move that carries no KV (Ascendra's offload of a waiting request) is a
control message and costs nothing, as the design prescribes for simulation.

Coefficients (``LINKS``):

- ``nvlink``: fitted (least squares on messages of at least 1% of the largest) to the send/recv profile of two
  A100s on one node over NVLink (``profiles/network/a100_pairwise_nvlink/send_recv.csv``, two devices per
  node): 2.2 us + bytes / 314.8 GB/s. ``fit_send_recv`` re-derives it; a test checks it against the data.
- ``infiniband``: fitted the same way to the DGX A100 profile across nodes (``a100_dgx``, one device per
  node): 45.4 us + bytes / 7.84 GB/s.
- ``pcie``: not profiled; PCIe 4.0 x16's 32 GB/s nominal at the 80% a large DMA achieves (25.6 GB/s), with
  NVLink's fitted latency as the floor of a device-to-device copy.
- ``ethernet-100g``: not profiled; 100 Gb/s (12.5 GB/s nominal) with the latency fitted across nodes.

A bare number is a bandwidth in GB/s with no latency term.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ascendra.errors import UserError
from ascendra.models import ModelSpec

GB = 1e9


@dataclass(frozen=True, slots=True)
class Link:
    """A point-to-point link between two GPUs of different instances."""

    name: str
    latency_s: float
    bandwidth_bps: float  # bytes per second

    def transfer_time(self, num_bytes: float) -> float:
        return self.latency_s + num_bytes / self.bandwidth_bps


LINKS: dict[str, Link] = {
    link.name: link
    for link in (
        Link("nvlink", 2.2e-6, 314.8 * GB),
        Link("infiniband", 45.4e-6, 7.84 * GB),
        Link("pcie", 2.2e-6, 25.6 * GB),
        Link("ethernet-100g", 45.4e-6, 12.5 * GB),
    )
}


def get_link(spec: str) -> Link:
    """A named link, or a bandwidth in GB/s (``"25"``)."""
    if spec in LINKS:
        return LINKS[spec]
    try:
        bandwidth = float(spec)
    except ValueError:
        raise UserError(f"unknown --link {spec!r}; use {', '.join(LINKS)} or a bandwidth in GB/s") from None
    if not bandwidth > 0:
        raise UserError(f"--link bandwidth must be positive, got {spec}")
    return Link(f"{bandwidth:g}GB/s", 0.0, bandwidth * GB)


def kv_move_time(link: Link, model: ModelSpec, tp: int) -> Callable[[int], float]:
    """Seconds to move ``kv_tokens`` tokens of ``model``'s KV between instances of TP degree ``tp``."""
    per_token = model.kv_bytes_per_token(tp)

    def move_time(kv_tokens: int) -> float:
        return 0.0 if kv_tokens == 0 else link.transfer_time(kv_tokens * per_token)

    return move_time


def fit_send_recv(path: Path, devices_per_node: int) -> tuple[float, float]:
    """(latency s, bandwidth bytes/s) of ``latency + bytes / bandwidth`` fitted to a send/recv profile's median
    times (ms) against message size (bytes), on messages of at least 1% of the largest (bandwidth-bound)."""
    import pandas as pd

    table = pd.read_csv(path)
    table = table[table["devices_per_node"] == devices_per_node]
    size = table["size"].to_numpy(dtype=float)
    seconds = table["time_stats.send_recv.median"].to_numpy(dtype=float) * 1e-3
    large = size >= size.max() / 100
    design = np.vstack([np.ones(int(large.sum())), size[large]]).T
    latency, inverse_bandwidth = np.linalg.lstsq(design, seconds[large], rcond=None)[0]
    return float(latency), float(1.0 / inverse_bandwidth)
