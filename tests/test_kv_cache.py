"""The KV pools: real, disjoint block ids; exact growth; misuse raises; the counting pool answers as the one with
ids; pool sizing by hand."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ascendra.errors import UserError
from ascendra.gpus import get_gpu
from ascendra.kv_cache import (
    DEFAULT_BLOCK_SIZE,
    BlockCounter,
    BlockManager,
    KVCacheError,
    KVPool,
    kv_bytes_per_block,
    num_kv_blocks,
)
from ascendra.models import get_model
from ascendra.request import Request, RequestSpec


def req(request_id: int, prompt: int = 10, output: int = 5) -> Request:
    return Request(RequestSpec(request_id, 0.0, prompt, output))


def test_grow_allocates_ceil_blocks_with_real_ids() -> None:
    blocks = BlockManager(10, block_size=4)
    a, b = req(1), req(2)
    blocks.grow(a, 5)  # 2 blocks
    blocks.grow(b, 4)  # 1 block
    assert blocks.block_table(1) == [0, 1]
    assert blocks.block_table(2) == [2]
    assert blocks.num_free == 7
    assert blocks.num_used == 3
    assert blocks.utilization == pytest.approx(0.3)


def test_grow_is_a_no_op_when_the_table_already_covers() -> None:
    blocks = BlockManager(10, block_size=4)
    a = req(1)
    blocks.grow(a, 8)
    blocks.grow(a, 3)
    blocks.grow(a, 8)
    assert blocks.block_table(1) == [0, 1]
    blocks.grow(a, 9)
    assert blocks.block_table(1) == [0, 1, 2]
    assert blocks.extra_blocks(a, 12) == 0
    assert blocks.extra_blocks(a, 13) == 1


def test_can_grow_counts_only_the_extra_blocks() -> None:
    blocks = BlockManager(3, block_size=4)
    a, b = req(1), req(2)
    blocks.grow(a, 8)
    assert blocks.can_grow(a, 12)
    assert not blocks.can_grow(a, 13)
    assert blocks.can_grow(b, 4)
    assert not blocks.can_grow(b, 5)


def test_oversubscription_raises_and_changes_nothing() -> None:
    blocks = BlockManager(2, block_size=16)
    a = req(1)
    with pytest.raises(KVCacheError):
        blocks.grow(a, 33)
    assert blocks.num_free == 2
    assert blocks.block_table(1) == []


def test_try_grow_reports_instead_of_raising() -> None:
    blocks = BlockManager(2, block_size=4)
    a = req(1)
    assert blocks.try_grow(a, 8)
    assert blocks.try_grow(a, 8)  # already covered
    assert not blocks.try_grow(a, 9)
    assert blocks.block_table(1) == [0, 1] and blocks.num_free == 0


def test_free_returns_blocks_and_double_free_raises() -> None:
    blocks = BlockManager(4, block_size=2)
    a, b = req(1), req(2)
    blocks.grow(a, 3)
    blocks.grow(b, 4)
    assert blocks.free(a) == 2
    assert not blocks.holds(a)
    assert blocks.num_free == 2
    with pytest.raises(KVCacheError):
        blocks.free(a)
    blocks.free(b)
    assert blocks.num_free == 4
    # Freed ids are handed out again: the pool never invents or loses ids.
    c = req(3)
    blocks.grow(c, 8)
    assert sorted(blocks.block_table(3)) == [0, 1, 2, 3]


def test_block_table_is_a_copy() -> None:
    blocks = BlockManager(4, block_size=2)
    a = req(1)
    blocks.grow(a, 2)
    blocks.block_table(1).append(99)
    assert blocks.block_table(1) == [0]


def test_blocks_for() -> None:
    blocks = BlockManager(4, block_size=16)
    assert [blocks.blocks_for(n) for n in (0, 1, 16, 17, 32, 33)] == [0, 1, 1, 2, 2, 3]


@pytest.mark.parametrize("pool", [BlockManager, BlockCounter])
@pytest.mark.parametrize(("num_blocks", "block_size"), [(0, 16), (4, 0), (-1, 16)])
def test_bad_sizes_are_user_errors(pool: type[KVPool], num_blocks: int, block_size: int) -> None:
    with pytest.raises(UserError):
        pool(num_blocks, block_size)


@settings(max_examples=60, deadline=None)
@given(
    num_blocks=st.integers(1, 40),
    block_size=st.sampled_from([1, 3, 16]),
    ops=st.lists(st.tuples(st.booleans(), st.integers(0, 5), st.integers(0, 100)), max_size=60),
)
def test_random_grow_free_keeps_the_pool_consistent(
    num_blocks: int, block_size: int, ops: list[tuple[bool, int, int]]
) -> None:
    """Whatever the sequence of grows and frees, tables are disjoint, cover what was asked, and together with
    the free list partition exactly the ids 0..num_blocks-1."""
    blocks = BlockManager(num_blocks, block_size)
    requests = [req(i) for i in range(6)]
    asked = [0] * 6
    for is_grow, who, tokens in ops:
        r = requests[who]
        if is_grow:
            fits = blocks.can_grow(r, tokens)
            if tokens % 2:
                assert blocks.try_grow(r, tokens) == fits
            elif fits:
                blocks.grow(r, tokens)
            else:
                with pytest.raises(KVCacheError):
                    blocks.grow(r, tokens)
            if fits:
                asked[who] = max(asked[who], tokens)
        elif blocks.holds(r):
            blocks.free(r)
            asked[who] = 0
        tables = [blocks.block_table(i) for i in range(6)]
        held = [b for t in tables for b in t]
        assert len(held) == len(set(held)) == blocks.num_used
        assert sorted(held + blocks._free) == list(range(num_blocks))
        for i, table in enumerate(tables):
            assert len(table) == blocks.blocks_for(asked[i])


@settings(max_examples=80, deadline=None)
@given(
    num_blocks=st.integers(1, 40),
    block_size=st.sampled_from([1, 3, 16]),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["grow", "try", "free", "add", "cover", "lacking"]),
            st.lists(st.integers(0, 5), max_size=4),
            st.integers(0, 100),
        ),
        max_size=60,
    ),
)
def test_the_counting_pool_answers_as_the_pool_with_ids(
    num_blocks: int, block_size: int, ops: list[tuple[str, list[int], int]]
) -> None:
    """Whatever the operations (grows that fit or not, frees, single blocks, a cohort's boundary members covered,
    the members lacking a block, misuse), ``BlockCounter`` returns, raises and reports what ``BlockManager`` does:
    the simulator relies on it."""
    pools = (BlockManager(num_blocks, block_size), BlockCounter(num_blocks, block_size))
    requests = [[req(i) for i in range(6)] for _ in pools]

    def outcome(pool: KVPool, people: list, op: str, who: list[int], tokens: int) -> object:
        first = people[who[0]] if who else people[0]
        try:
            if op == "grow":
                return pool.grow(first, tokens)
            if op == "try":
                return pool.try_grow(first, tokens)
            if op == "free":
                return pool.free(first)
            if op == "add":
                return pool.add_blocks([first]) if pool.holds(first) and pool.num_free else "skipped"
            boundary = []
            for i in dict.fromkeys(who):  # members in order, each once; next slot = base + step
                people[i]._base = tokens
                boundary.append((i, people[i], i))  # finish tick: the member's index
            if op == "lacking":
                return [r.id for r in pool.lacking(boundary, 2)]  # members 0-2 finish by tick 2
            stuck = pool.cover_next_slots(boundary, 1)
            return None if stuck is None else stuck.id
        except (KVCacheError, KeyError) as exc:
            return type(exc)

    for op, who, tokens in ops:
        answers = [outcome(pool, people, op, who, tokens) for pool, people in zip(pools, requests, strict=True)]
        assert answers[0] == answers[1]
        for i in range(6):
            a, b = (pool.num_blocks_of(people[i]) for pool, people in zip(pools, requests, strict=True))
            assert a == b and pools[0].holds(requests[0][i]) == pools[1].holds(requests[1][i])
        assert pools[0].num_free == pools[1].num_free and pools[0].num_used == pools[1].num_used


def test_num_kv_blocks_llama_a100_by_hand() -> None:
    model, gpu = get_model("llama-3.1-8b"), get_gpu("a100-80gb")
    # 32 layers x (K, V) x 8 KV heads x 128 dims x 2 bytes x 16 slots = 2 MiB per block.
    assert kv_bytes_per_block(model) == 2 * 1024**2
    # 8,030,261,248 parameters in fp16; 72 GiB usable: (77,309,411,328 - 16,060,522,496) / 2 MiB = 29,205.7.
    assert model.weight_bytes == 16_060_522_496
    assert num_kv_blocks(model, gpu, 1, 0.9, activation_reserve_bytes=0) == 29_205
    # One GiB of activations costs exactly 512 blocks.
    assert num_kv_blocks(model, gpu, 1, 0.9, activation_reserve_bytes=1024**3) == 29_205 - 512
    # The default estimate keeps a couple of GiB out: still tens of thousands of blocks (~450K tokens).
    assert 27_000 < num_kv_blocks(model, gpu) < 29_205


def test_block_size_defaults_to_the_one_constant_and_is_configurable() -> None:
    model, gpu = get_model("llama-3.1-8b"), get_gpu("a100-80gb")
    assert BlockManager(4).block_size == DEFAULT_BLOCK_SIZE == 16
    assert kv_bytes_per_block(model, block_size=32) == 2 * kv_bytes_per_block(model)
    reserve = {"activation_reserve_bytes": 0}
    assert num_kv_blocks(model, gpu, block_size=32, **reserve) == num_kv_blocks(model, gpu, **reserve) // 2


def test_num_kv_blocks_tensor_parallel_shards_weights_and_kv() -> None:
    model, gpu = get_model("llama-3.1-8b"), get_gpu("a100-80gb")
    # Per GPU: 72 GiB - 8,030,261,248 bytes of weights, blocks of 1 MiB.
    expected = int((0.9 * 80 * 1024**3 - 16_060_522_496 / 2) // (1024**2))
    assert num_kv_blocks(model, gpu, 2, 0.9, activation_reserve_bytes=0) == expected


def test_num_kv_blocks_without_room_is_a_user_error() -> None:
    model = get_model("llama-3.1-8b")
    small = dataclasses.replace(get_gpu("a100-80gb"), name="tiny-gpu", memory_bytes=16 * 1024**3)
    with pytest.raises(UserError, match="no memory for the KV cache"):
        num_kv_blocks(model, small)
    with pytest.raises(UserError):
        num_kv_blocks(model, get_gpu("a100-80gb"), tp=0)
