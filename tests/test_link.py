"""The link model: shipped coefficients re-derived from the network profiles, transfer times on hand-computed
cases, and a simulated KV move charged by the run config's link."""

from __future__ import annotations

from pathlib import Path

import pytest

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.harness.config import RunConfig
from ascendra.instance import Instance
from ascendra.kv_cache import BlockManager
from ascendra.link import LINKS, fit_send_recv, get_link, kv_move_time
from ascendra.models import get_model
from ascendra.request import Request, RequestSpec
from ascendra.router import Move
from ascendra.sim.cluster import Cluster
from baselines.vllm import VllmScheduler

NETWORK = Path(__file__).resolve().parents[2] / "shared" / "data" / "profiles" / "network"
LLAMA_KV_PER_TOKEN = 32 * 2 * 8 * 128 * 2  # layers x (K, V) x KV heads x head dim x bf16 bytes


@pytest.mark.parametrize(
    ("name", "folder", "devices_per_node"), [("nvlink", "a100_pairwise_nvlink", 2), ("infiniband", "a100_dgx", 1)]
)
def test_fitted_links_match_the_profiles(name: str, folder: str, devices_per_node: int) -> None:
    path = NETWORK / folder / "send_recv.csv"
    if not path.exists():
        pytest.skip(f"network profiles not found at {path}")
    latency, bandwidth = fit_send_recv(path, devices_per_node)
    assert LINKS[name].latency_s == pytest.approx(latency, abs=0.05e-6)
    assert LINKS[name].bandwidth_bps == pytest.approx(bandwidth, rel=0.002)


def test_a_move_costs_latency_plus_bytes_over_bandwidth_and_nothing_without_kv() -> None:
    model = get_model("llama-3.1-8b")
    assert model.kv_bytes_per_token(1) == LLAMA_KV_PER_TOKEN
    move_time = kv_move_time(get_link("nvlink"), model, tp=1)
    assert move_time(0) == 0.0
    assert move_time(1000) == pytest.approx(2.2e-6 + 1000 * LLAMA_KV_PER_TOKEN / 314.8e9)
    # Under TP each GPU sends its shard over its own link: half the bytes per link at TP 2.
    assert kv_move_time(get_link("25"), model, tp=2)(1000) == pytest.approx(1000 * LLAMA_KV_PER_TOKEN / 2 / 25e9)


@pytest.mark.parametrize("bad", ["carrier-pigeon", "0", "-3"])
def test_unknown_links_are_user_errors(bad: str) -> None:
    with pytest.raises(UserError, match="--link"):
        RunConfig.of(link=bad)


def test_the_default_link_is_not_stored() -> None:
    assert "cluster" not in RunConfig.of().to_dict()
    assert RunConfig.of(link="pcie").to_dict()["cluster"] == {"link": "pcie"}


class HandOff:
    """Arrivals go to gpu0; after each of its steps, its decoding requests left out of the batch move to gpu1
    with their KV (a prefill/decode hand-off)."""

    def __init__(self, instances: list[Instance]) -> None:
        self.instances = instances

    def route(self, request: Request, now: float) -> Instance:
        return self.instances[0]

    def moves_after(self, instance: Instance, batch: Batch, now: float) -> list[Move]:
        source, target = self.instances
        if instance is not source:
            return []
        in_batch = {id(item.request) for item in batch.items}
        leaving = [r for r in source.scheduler.running if id(r) not in in_batch and not r.in_prefill]
        return [Move(r, target, source.scheduler.release(r)) for r in leaving]


def test_a_simulated_kv_move_is_delivered_after_the_links_transfer_time() -> None:
    """Over PCIe each move of t tokens arrives 2.2 us + t x 128 KiB / 25.6 GB/s after it was decided."""
    instances = [
        Instance(f"gpu{i}", VllmScheduler(BlockManager(64)), lambda b: 0.1 + 0.001 * b.num_tokens) for i in range(2)
    ]
    router = HandOff(instances)
    config = RunConfig.of(link="pcie", model="llama-3.1-8b")
    specs = [RequestSpec(i, 0.01 * i, 40, 6) for i in range(4)]
    result = Cluster(instances, router, config.cluster.transfer_time()).run(specs)
    assert result.moves and all(r.finished for r in result.requests)
    for move in result.moves:
        assert move.kv_tokens > 0
        assert move.latency == pytest.approx(2.2e-6 + move.kv_tokens * LLAMA_KV_PER_TOKEN / 25.6e9)
