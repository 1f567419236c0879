"""The engine driven by the project's real schedulers and block manager: a tight KV pool forces chunking and
preemptions, and every request's greedy output must equal running it alone."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ascendra.engine import Engine, EngineConfig, dummy_weights  # noqa: E402
from ascendra.kv_cache import BlockManager  # noqa: E402
from ascendra.policy import BasePolicy  # noqa: E402
from ascendra.request import Request, RequestSpec  # noqa: E402
from baselines.sarathi import SarathiScheduler  # noqa: E402
from baselines.vllm import VllmScheduler  # noqa: E402

torch.set_num_threads(1)
CFG = EngineConfig.from_hf_dict(
    {
        "model_type": "llama",
        "vocab_size": 101,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
    }
)
WEIGHTS = dummy_weights(CFG, seed=3, std=0.2)
LENS = [(30, 12), (7, 20), (45, 5), (18, 16), (26, 9), (11, 14)]


def requests() -> list[Request]:
    out = []
    for i, (p, o) in enumerate(LENS):
        ids = torch.randint(CFG.shape.vocab, (p,), generator=torch.Generator().manual_seed(100 + i)).tolist()
        out.append(Request(RequestSpec(i, 0.0, p, o, tuple(ids))))
    return out


def serve(scheduler: BasePolicy, reqs: list[Request]) -> dict[int, list[int]]:
    """The live runtime's loop in miniature: schedule, execute with the manager's block tables, append, advance."""
    blocks = scheduler.blocks
    engine = Engine(CFG, WEIGHTS, blocks.num_blocks, blocks.block_size)
    for r in reqs:
        scheduler.add(r, 0.0)
    now = 0.0
    while scheduler.has_work():
        batch = scheduler.schedule(now)
        assert batch, "scheduler stalled"
        out = engine.execute(batch, {it.request.id: blocks.block_table(it.request.id) for it in batch.items})
        for item in batch.items:
            if out[item.request.id] is not None:
                item.request.output_ids.append(out[item.request.id])
        now += 1.0
        scheduler.on_batch_done(batch, now)
    return {r.id: r.output_ids for r in reqs}


def test_engine_under_real_schedulers_matches_solo_runs() -> None:
    solo = {}
    for r in requests():
        solo |= serve(SarathiScheduler(BlockManager(64, block_size=16), chunk_size=512), [r])
    assert all(len(solo[i]) == o for i, (_, o) in enumerate(LENS))

    # 14-20 blocks of 4 slots cannot hold all six requests: decodes preempt, preempted requests recompute.
    for make in (
        lambda: SarathiScheduler(BlockManager(14, block_size=4), chunk_size=8),
        lambda: SarathiScheduler(BlockManager(20, block_size=4), chunk_size=16),
        lambda: VllmScheduler(BlockManager(20, block_size=4), max_num_batched_tokens=64),
    ):
        scheduler = make()
        reqs = requests()
        assert serve(scheduler, reqs) == solo
        assert not any(r.dropped for r in reqs)
        assert scheduler.num_preemptions > 0
