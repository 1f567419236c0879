"""The shared coordinator and the schedulers' side of moves: the end-of-run invariant, free and KV-carrying moves
on each runtime's clock, ``release`` and ``adopt`` (with its fall back to recomputation)."""

from __future__ import annotations

import asyncio
import time

import pytest

from ascendra.batch import Batch
from ascendra.coordinator import CANCELLED, Coordinator
from ascendra.instance import Instance
from ascendra.kv_cache import BlockManager
from ascendra.live.cluster import LiveCluster
from ascendra.request import Request, RequestSpec
from ascendra.router import Move, PreCopy, RoundRobinRouter
from ascendra.serve.cluster import End, Limits, ServingCluster, Token
from ascendra.sim.cluster import Cluster
from baselines.sarathi import SarathiScheduler
from baselines.vllm import VllmScheduler


def linear_cost(batch: Batch) -> float:
    """0.1 s per iteration plus 1 ms per token: easy to follow by hand."""
    return 0.1 + 0.001 * batch.num_tokens


def where(request: Request, instances: list[Instance]) -> list[str]:
    """Every place ``request`` is held: ``name:waiting``, ``name:running``, ``name:kv`` (blocks held)."""
    found = []
    for node in instances:
        scheduler = node.scheduler
        found += [f"{node.name}:waiting"] if request in scheduler.waiting else []
        found += [f"{node.name}:running"] if request in scheduler.running else []
        found += [f"{node.name}:kv"] if scheduler.blocks.holds(request) else []
    return found


class HandOff:
    """Arrivals go to the first instance. After each of its steps, the requests the step left out are moved to
    the second instance: running ones in decode (not in the batch) with their KV, or else waiting ones that never
    started. Every step of either instance logs where request 0 is."""

    def __init__(self, instances: list[Instance], with_kv: bool) -> None:
        self.instances = instances
        self.with_kv = with_kv
        self.log: list[tuple[float, str, list[str]]] = []
        self.request0: Request | None = None

    def route(self, request: Request, now: float) -> Instance:
        if request.id == 0:
            self.request0 = request
        return self.instances[0]

    def moves_after(self, instance: Instance, batch: Batch, now: float) -> list[Move]:
        if self.request0 is not None:
            self.log.append((now, instance.name, where(self.request0, self.instances)))
        if instance is not self.instances[0]:
            return []
        scheduler = instance.scheduler
        in_batch = {id(item.request) for item in batch.items}
        if self.with_kv:
            leaving = [r for r in scheduler.running if id(r) not in in_batch and not r.in_prefill]
        else:
            leaving = [r for r in scheduler.waiting if r.never_started]
        return [Move(r, self.instances[1], scheduler.release(r)) for r in leaving]


def two_vllm(num_blocks: int = 64, max_num_seqs: int = 128, executor=linear_cost) -> list[Instance]:
    return [Instance(f"gpu{i}", VllmScheduler(BlockManager(num_blocks), max_num_seqs), executor) for i in range(2)]


def test_the_end_of_run_check_names_a_request_neither_finished_nor_dropped() -> None:
    done, lost = Request(RequestSpec(1, 0.0, 8, 1)), Request(RequestSpec(7, 0.0, 8, 1))
    done.finish_time = 1.0
    with pytest.raises(AssertionError, match="request 7 is neither finished, dropped nor cancelled"):
        Coordinator.check_all_done([done, lost])
    done.dropped = True
    with pytest.raises(AssertionError, match="request 1 is both finished and dropped"):
        Coordinator.check_all_done([done])


def test_a_cancelled_request_leaves_at_once_or_right_after_the_batch_computing_it() -> None:
    nodes = two_vllm()
    gpu0, _ = nodes
    ended: list[tuple[int, str | None]] = []
    coordinator = Coordinator(nodes, RoundRobinRouter(nodes), on_end=lambda r, error: ended.append((r.id, error)))
    computed, waiting = Request(RequestSpec(0, 0.0, 16, 8)), Request(RequestSpec(1, 0.0, 16, 8))
    coordinator.arrive(computed, 0.0)  # gpu0
    coordinator.arrive(waiting, 0.0)  # gpu1, not scheduled yet
    gpu0.batch = gpu0.scheduler.schedule(0.0)
    coordinator.cancel(computed, 0.1)
    coordinator.cancel(waiting, 0.1)
    assert ended == [(1, CANCELLED)] and waiting.cancelled and where(waiting, nodes) == []
    coordinator.cancel_pending(0.2)  # the batch still computes it: its blocks stay
    assert not computed.cancelled and where(computed, nodes) == ["gpu0:running", "gpu0:kv"]
    gpu0.scheduler.on_batch_done(gpu0.batch, 0.3)
    gpu0.batch = None
    coordinator.cancel_pending(0.3)
    assert computed.cancelled and where(computed, nodes) == [] and gpu0.scheduler.blocks.num_used == 0
    assert ended[-1] == (0, CANCELLED) and coordinator.outstanding == 0
    Coordinator.check_all_done([computed, waiting])
    coordinator.cancel(computed, 0.4)  # it has ended: nothing happens
    assert len(ended) == 2


def test_a_request_cancelled_in_transit_leaves_once_delivered() -> None:
    nodes = two_vllm(max_num_seqs=1)
    coordinator = Coordinator(nodes, HandOff(nodes, with_kv=False), transfer_time=lambda move, source: 0.5)
    first, moved = Request(RequestSpec(0, 0.0, 16, 8)), Request(RequestSpec(1, 0.0, 16, 8))
    coordinator.arrive(first, 0.0)
    coordinator.arrive(moved, 0.0)
    gpu0, gpu1 = nodes
    batch = gpu0.scheduler.schedule(0.0)  # runs `first`; `moved` waits, so the router sends it to gpu1
    coordinator.after_schedule(gpu0, batch, 0.0)
    assert coordinator.num_in_transit == 1
    coordinator.cancel(moved, 0.1)
    assert not moved.cancelled
    coordinator.deliver_due(0.5)
    coordinator.cancel_pending(0.5)
    assert moved.cancelled and where(moved, nodes) == [] and coordinator.outstanding == 1


def test_a_free_move_is_delivered_when_it_is_decided() -> None:
    nodes = two_vllm(max_num_seqs=1)
    result = Cluster(nodes, HandOff(nodes, with_kv=False)).run([RequestSpec(i, 0.0, 16, 4) for i in range(3)])
    assert all(r.finished for r in result.requests)
    # gpu0 prefills request 0 until 0.116, then cannot admit the other two (one sequence) and hands them over.
    moves = [(m.request_id, m.source, m.target, m.kv_tokens, m.decided) for m in result.moves]
    assert moves == [(1, "gpu0", "gpu1", 0, pytest.approx(0.116)), (2, "gpu0", "gpu1", 0, pytest.approx(0.116))]
    assert all(m.delivered == m.decided for m in result.moves)
    assert [r.instances for r in result.requests] == [["gpu0"], ["gpu0", "gpu1"], ["gpu0", "gpu1"]]
    assert result.requests[1].first_scheduled == result.moves[0].decided  # the idle gpu1 started it at once


def test_a_kv_move_travels_for_its_transfer_time_and_keeps_its_cache() -> None:
    # t=0 gpu0 prefills A (10 tok, ends 0.110). At 0.110 it prefills B (arrived 0.05), leaving A, now decoding,
    # out of the batch: A moves to gpu1 with its 10 KV tokens, arriving 0.5 s later, and decodes there.
    nodes = two_vllm()
    router = HandOff(nodes, with_kv=True)
    cluster = Cluster(nodes, router, transfer_time=lambda move, source: 0.05 * move.kv_tokens)
    result = cluster.run([RequestSpec(0, 0.0, 10, 4), RequestSpec(1, 0.05, 20, 2)])
    a, b = result.requests
    assert [(m.request_id, m.source, m.target, m.kv_tokens) for m in result.moves] == [(0, "gpu0", "gpu1", 10)]
    assert result.moves[0].decided == pytest.approx(0.110)
    assert result.moves[0].delivered == pytest.approx(0.610) and result.moves[0].latency == pytest.approx(0.5)
    # No recomputation: gpu1 decodes from token 11 at 0.610 (0.101 s per decode).
    assert a.token_times == pytest.approx([0.110, 0.711, 0.812, 0.913])
    assert a.preemptions == 0 and a.instances == ["gpu0", "gpu1"]
    assert b.finished and b.instances == ["gpu0"]
    log = {(round(now, 3), name): place for now, name, place in router.log}
    assert log[(0.0, "gpu0")] == ["gpu0:running", "gpu0:kv"]
    # In transit (gpu0's steps at 0.230 and 0.331): in no queue, and neither pool holds its blocks.
    assert log[(0.23, "gpu0")] == [] and log[(0.331, "gpu0")] == []
    # Delivered: gpu1 reserved its blocks and runs it.
    assert log[(0.61, "gpu1")] == ["gpu1:running", "gpu1:kv"]
    assert [n.scheduler.blocks.num_free for n in nodes] == [64, 64]


def test_release_frees_the_blocks_and_returns_the_kv_tokens() -> None:
    scheduler = VllmScheduler(BlockManager(8))
    running, waiting = Request(RequestSpec(0, 0.0, 20, 4)), Request(RequestSpec(1, 0.0, 100, 4))
    scheduler.add(running, 0.0)
    scheduler.add(waiting, 0.0)
    batch = scheduler.schedule(0.0)  # admits request 0 (2 blocks); 100 tokens do not fit the other 6
    scheduler.on_batch_done(batch, 0.1)
    assert scheduler.blocks.num_free == 6
    assert scheduler.release(running) == 20
    assert scheduler.blocks.num_free == 8 and not scheduler.running
    assert scheduler.release(waiting) == 0
    assert not scheduler.has_work()
    with pytest.raises(ValueError, match="request 1 is neither waiting nor running"):
        scheduler.release(waiting)


def decoding(prompt: int = 16, output: int = 8, decodes: int = 4) -> Request:
    """A request released from another instance after its prefill and ``decodes`` decode steps."""
    source = VllmScheduler(BlockManager(64))
    request = Request(RequestSpec(9, 0.0, prompt, output))
    source.add(request, 0.0)
    for step in range(decodes + 1):
        source.on_batch_done(source.schedule(step), step + 0.5)
    assert source.release(request) == prompt + decodes
    return request


def test_adopt_continues_with_the_kv_when_the_pool_has_room() -> None:
    request = decoding()  # 20 tokens of KV, 5 generated
    target = VllmScheduler(BlockManager(8))
    target.adopt(request, 5.0)
    assert target.running == [request] and target.blocks.num_blocks_of(request) == 2
    batch = target.schedule(5.0)
    assert [(i.request, i.num_tokens, i.context, i.is_prefill) for i in batch.items] == [(request, 1, 20, False)]


@pytest.mark.parametrize("full", ["blocks", "sequences"])
def test_adopt_falls_back_to_recomputation_when_the_target_is_full(full: str) -> None:
    target = VllmScheduler(BlockManager(6), max_num_seqs=1 if full == "sequences" else 8)
    hog = Request(RequestSpec(0, 0.0, 80 if full == "blocks" else 16, 2))  # 5 of 6 blocks, or the one slot
    target.add(hog, 0.0)
    target.schedule(0.0)
    request = decoding()  # needs 2 blocks for its 20 KV tokens
    target.adopt(request, 5.0)
    assert request.num_computed == 0 and request.prefill_target == 16 + 5 and request.preemptions == 1
    assert list(target.waiting) == [request] and target.running == [hog]
    assert not target.blocks.holds(request) and target.num_preemptions == 1


def test_a_prefill_cut_short_continues_only_where_prefills_are_chunked() -> None:
    source = SarathiScheduler(BlockManager(64), chunk_size=8)
    request = Request(RequestSpec(3, 0.0, 20, 4))
    source.add(request, 0.0)
    source.on_batch_done(source.schedule(0.0), 0.1)  # the first 8-token chunk of 20
    assert source.release(request) == 8
    chunked = SarathiScheduler(BlockManager(64), chunk_size=8)
    chunked.adopt(request, 0.2)
    assert chunked.blocks.num_blocks_of(request) == 2  # the whole prompt, as admission reserves
    assert [(i.num_tokens, i.context) for i in chunked.schedule(0.2).items] == [(8, 8)]
    assert chunked.release(request) == 8
    whole = VllmScheduler(BlockManager(64))  # runs whole prefills only: recomputes it
    whole.adopt(request, 0.3)
    assert request.num_computed == 0 and list(whole.waiting) == [request]


def stand_in(seconds: float):
    """An executor that takes ``seconds`` and emits token 0 wherever a token is due."""

    def execute(batch: Batch) -> float:
        time.sleep(seconds)
        for item in batch.items:
            if not item.is_prefill or item.context + item.num_tokens >= item.request.prefill_target:
                item.request.output_ids.append(0)
        return seconds

    return execute


def test_live_kv_moves_are_delivered_after_their_transfer_time() -> None:
    nodes = two_vllm(executor=stand_in(0.01))
    cluster = LiveCluster(nodes, HandOff(nodes, with_kv=True), transfer_time=lambda move, source: 0.2)
    result = cluster.run([RequestSpec(0, 0.0, 16, 40), RequestSpec(1, 0.1, 16, 2)])
    assert all(r.finished and len(r.output_ids) == r.output_len for r in result.requests)
    (move,) = result.moves
    assert (move.request_id, move.source, move.target) == (0, "gpu0", "gpu1") and move.kv_tokens > 16
    assert 0.2 <= move.latency < 0.35
    assert result.requests[0].preemptions == 0


class DropOdd(RoundRobinRouter):
    def route(self, request: Request, now: float) -> Instance | None:
        return None if request.id % 2 else super().route(request, now)


def test_served_streams_end_when_their_request_finishes_or_is_dropped() -> None:
    nodes = two_vllm(executor=stand_in(0.001))
    cluster = ServingCluster(
        nodes, DropOdd(nodes), Limits(vocab_size=100, max_model_len=64, num_blocks=64, block_size=16)
    )

    async def serve() -> list[list[Token | End]]:
        streams = [cluster.submit([1, 2, 3], 3, asyncio.get_running_loop()) for _ in range(2)]
        out = []
        for stream in streams:
            items = [await stream.queue.get()]
            while not isinstance(items[-1], End):
                items.append(await asyncio.wait_for(stream.queue.get(), 5))
            out.append(items)
        return out

    cluster.start()
    try:
        finished, dropped = asyncio.run(serve())
    finally:
        cluster.stop()
    assert finished == [Token(0), Token(0), Token(0), End(None, "length", 3)]
    assert dropped == [End("dropped by admission control")]
    assert cluster.coordinator.outstanding == 0


class PrefillOnly(VllmScheduler):
    """Runs whole prefills and never decodes: a prefilled request stays in ``running``, holding its KV."""

    def schedule(self, now: float) -> Batch:
        batch = Batch()
        self._admit_waiting(batch, 8192, now, chunked=False)
        return batch


class PullFromFirst:
    """Arrivals alternate gpu0, gpu1. After each gpu1 step, gpu1 pulls the prefilled requests gpu0 holds,
    naming gpu0 as the source, as if 4 of their KV tokens had been pre-copied over 2 stages from 0.2 s before."""

    def __init__(self, instances: list[Instance]) -> None:
        self.instances = instances

    def route(self, request: Request, now: float) -> Instance:
        return self.instances[request.id % 2]

    def moves_after(self, instance: Instance, batch: Batch, now: float) -> list[Move]:
        source, target = self.instances
        if instance is not target:
            return []
        held = [r for r in source.scheduler.running if not r.in_prefill]
        precopy = PreCopy(4, now - 0.2, 2)
        return [Move(r, target, source.scheduler.release(r), source=source, precopy=precopy) for r in held]


def test_a_move_may_name_its_source_and_only_the_rest_of_a_precopied_cache_is_charged() -> None:
    nodes = [
        Instance("gpu0", PrefillOnly(BlockManager(64)), linear_cost),
        Instance("gpu1", VllmScheduler(BlockManager(64)), linear_cost),
    ]
    charged: list[int] = []

    def transfer(move: Move, source: Instance) -> float:
        charged.append(move.sent_tokens)
        assert source is nodes[0]
        return 0.01

    # gpu0 prefills request 0 by 0.110 and holds it; request 1 reaches gpu1 at 0.3, whose first step pulls it.
    specs = [RequestSpec(0, 0.0, 10, 3), RequestSpec(1, 0.3, 10, 3)]
    result = Cluster(nodes, PullFromFirst(nodes), transfer).run(specs)
    assert all(r.finished for r in result.requests)
    (record,) = result.moves
    assert (record.source, record.target, record.kv_tokens, record.decided) == ("gpu0", "gpu1", 10, 0.3)
    assert charged == [10 - 4] and (record.precopied, record.stages) == (4, 3)
    assert record.started == pytest.approx(0.1) and record.latency == pytest.approx(0.01)
    assert result.requests[0].token_times[0] == pytest.approx(0.110)
    assert result.requests[0].token_times[1] > 0.31  # its next token only after the move was delivered
