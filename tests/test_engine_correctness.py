"""The paged, batched, chunked engine against a dense full-recompute reference, and greedy-output invariance
under chunking, batching and preemption (tiny random fp32 models on CPU)."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")

from ascendra.batch import Batch  # noqa: E402
from ascendra.engine import Engine, EngineConfig, dummy_weights  # noqa: E402
from ascendra.engine.reference import reference_logits  # noqa: E402
from ascendra.errors import UserError  # noqa: E402
from ascendra.models import get_model  # noqa: E402
from ascendra.request import Request, RequestSpec  # noqa: E402

torch.set_num_threads(1)
BLOCK = 4  # small blocks so sequences span many, non-contiguous blocks

BASE = {
    "vocab_size": 97,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
    "rms_norm_eps": 1e-5,
}
CONFIGS = {
    "llama3-rope": EngineConfig.from_hf_dict(
        dict(
            BASE,
            model_type="llama",
            rope_theta=500000.0,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16,
            },
        )
    ),
    "qwen2-bias-tied": EngineConfig.from_hf_dict(
        dict(BASE, model_type="qwen2", tie_word_embeddings=True, num_key_value_heads=1, rope_theta=1e6)
    ),
    "mistral-window": EngineConfig.from_hf_dict(dict(BASE, model_type="mistral", sliding_window=7)),
    "tiny": EngineConfig.from_model_spec(get_model("tiny")),
}


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


class Blocks:
    """A trivial allocator standing in for the block manager: shuffled ids, so tables are non-contiguous."""

    def __init__(self, num_blocks: int, seed: int = 0) -> None:
        self.free = list(range(num_blocks))
        random.Random(seed).shuffle(self.free)
        self.tables: dict[int, list[int]] = {}

    def grow(self, rid: int, tokens: int) -> None:
        table = self.tables.setdefault(rid, [])
        while len(table) * BLOCK < tokens:
            table.append(self.free.pop())

    def release(self, rid: int) -> None:
        self.free.extend(reversed(self.tables.pop(rid, [])))


def make_request(rid: int, prompt_len: int, output_len: int, vocab: int, seed: int) -> Request:
    g = torch.Generator().manual_seed(seed * 1000 + rid)
    ids = tuple(torch.randint(vocab, (prompt_len,), generator=g).tolist())
    return Request(RequestSpec(rid, 0.0, prompt_len, output_len, ids))


def step(engine: Engine, blocks: Blocks, plan: list[tuple[Request, int, bool]]) -> dict[int, int | None]:
    """Run one batch (request, num_tokens, is_prefill) like a scheduler + runtime would, sampling greedily."""
    batch = Batch()
    for req, n, is_prefill in plan:
        blocks.grow(req.id, req.num_computed + n)
        batch.add(req, n, is_prefill)
    out = engine.execute(batch, blocks.tables)
    for item in batch.items:
        token = out[item.request.id]
        assert (token is None) == (item.is_prefill and item.context + item.num_tokens < item.request.prefill_target)
        if token is not None:
            item.request.output_ids.append(token)
        if item.request.advance(item.num_tokens, 1.0):
            blocks.release(item.request.id)
    return out


def generate(
    engine: Engine, blocks: Blocks, requests: list[Request], budget: int, preempt_at: dict[int, int] | None = None
) -> dict[int, list[int]]:
    """A Sarathi-like loop: decodes first, then prefill chunks within a token budget; optionally preempt a
    request (free its blocks, recompute later) once it has generated ``preempt_at[rid]`` tokens."""
    preempt_at = dict(preempt_at or {})
    while not all(r.finished for r in requests):
        plan: list[tuple[Request, int, bool]] = []
        for r in requests:
            if not r.finished and not r.in_prefill:
                if preempt_at.get(r.id) == r.num_generated:
                    del preempt_at[r.id]
                    blocks.release(r.id)
                    r.preempt()
                    continue
                plan.append((r, 1, False))
        left = budget - len(plan)
        for r in requests:
            if r.in_prefill and left > 0:
                n = min(r.remaining_prefill, left)
                plan.append((r, n, True))
                left -= n
        step(engine, blocks, plan)
    return {r.id: list(r.output_ids) for r in requests}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_random_mixed_batches_match_dense_reference(name: str, device: str) -> None:
    """Random chunk sizes, batch compositions and a preemption; every new token's logits vs full recompute."""
    cfg = CONFIGS[name]
    weights = dummy_weights(cfg, seed=7, std=0.2, device=device)
    engine = Engine(cfg, weights, num_blocks=96, block_size=BLOCK, device=device, dtype="fp32")
    blocks = Blocks(96, seed=1)
    rng = random.Random(3)
    requests = [make_request(i, rng.randint(1, 40), rng.randint(1, 12), cfg.shape.vocab, seed=1) for i in range(7)]
    checked: list[tuple[Request, int, torch.Tensor]] = []  # (request, first position, logits)
    preempted = False
    while not all(r.finished for r in requests):
        live = [r for r in requests if not r.finished]
        chosen = rng.sample(live, rng.randint(1, len(live)))
        if not preempted and any(r.num_generated >= 2 and not r.in_prefill for r in chosen):
            victim = next(r for r in chosen if r.num_generated >= 2 and not r.in_prefill)
            blocks.release(victim.id)
            victim.preempt()  # its blocks go to whoever grows next; it recomputes prompt + generated tokens
            preempted = True
        batch = Batch()
        for r in chosen:
            n = rng.randint(1, r.remaining_prefill) if r.in_prefill else 1
            blocks.grow(r.id, r.num_computed + n)
            batch.add(r, n, r.in_prefill)
        logits = engine.logits(batch, blocks.tables)
        for item in batch.items:
            r = item.request
            checked.append((r, item.context, logits[r.id]))
            if not item.is_prefill or item.context + item.num_tokens >= r.prefill_target:
                r.output_ids.append(int(logits[r.id][-1].argmax()))  # greedy, so the sequence stays plausible
            if r.advance(item.num_tokens, 1.0):
                blocks.release(r.id)
    assert preempted
    refs = {r.id: reference_logits(cfg, weights, list(r.spec.prompt_ids) + r.output_ids) for r in requests}
    worst = max((got.cpu() - refs[r.id][pos : pos + got.shape[0]]).abs().max().item() for r, pos, got in checked)
    assert worst < 1e-4
    assert sum(got.shape[0] for _, _, got in checked) > sum(r.prompt_len + r.output_len for r in requests)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["llama3-rope", "mistral-window"])
def test_greedy_output_invariant_to_chunking_batching_and_preemption(name: str, device: str) -> None:
    cfg = CONFIGS[name]
    weights = dummy_weights(cfg, seed=11, std=0.2, device=device)
    lens = [(23, 9), (5, 14), (37, 6), (12, 11)]

    def fresh() -> list[Request]:
        return [make_request(i, p, o, cfg.shape.vocab, seed=2) for i, (p, o) in enumerate(lens)]

    def engine() -> Engine:
        return Engine(cfg, weights, num_blocks=64, block_size=BLOCK, device=device, dtype="fp32")

    alone: dict[int, list[int]] = {}
    for r in fresh():
        alone |= generate(engine(), Blocks(64), [r], budget=1000)
    assert all(len(alone[i]) == o for i, (_, o) in enumerate(lens))
    assert len({tuple(v) for v in alone.values()}) == len(lens)
    for budget in (1000, 16, 5):
        assert generate(engine(), Blocks(64, seed=budget), fresh(), budget=budget) == alone
    # Preempt two requests mid-decode: their blocks are reused by others, then they recompute in chunks.
    assert generate(engine(), Blocks(64, seed=9), fresh(), budget=8, preempt_at={0: 3, 2: 1}) == alone


def test_temperature_sampling_is_seeded_and_varies() -> None:
    cfg = CONFIGS["tiny"]
    weights = dummy_weights(cfg, seed=0, std=0.5)

    def run(seed: int) -> dict[int, list[int]]:
        engine = Engine(cfg, weights, num_blocks=32, block_size=BLOCK, temperature=1.0, seed=seed)
        reqs = [make_request(i, 10, 20, cfg.shape.vocab, seed=4) for i in range(2)]
        return generate(engine, Blocks(32), reqs, budget=64)

    assert run(1) == run(1)
    assert run(1) != run(2)
    with pytest.raises(UserError, match="temperature"):
        Engine(cfg, weights, num_blocks=4, temperature=-1.0)


@pytest.mark.parametrize("device", DEVICES)
def test_reduced_precision_tracks_fp32(device: str) -> None:
    cfg = CONFIGS["llama3-rope"]
    weights = dummy_weights(cfg, seed=5, std=0.2, device=device)
    ids = make_request(0, 30, 1, cfg.shape.vocab, seed=5)
    ref = reference_logits(cfg, weights, list(ids.spec.prompt_ids))
    for dtype, tol in (("bf16", 0.15), ("fp16", 0.03)):
        engine = Engine(cfg, weights, num_blocks=16, block_size=BLOCK, device=device, dtype=dtype)
        req = make_request(0, 30, 1, cfg.shape.vocab, seed=5)
        batch = Batch()
        batch.add(req, 30, True)
        got = engine.logits(batch, {0: list(range(8))})[0]
        assert engine.kv_cache.k[0].dtype == engine.dtype
        assert (got.cpu() - ref).abs().max().item() < tol


def test_bad_batches_are_rejected() -> None:
    cfg = CONFIGS["tiny"]
    engine = Engine(cfg, dummy_weights(cfg), num_blocks=8, block_size=BLOCK)
    no_ids = Request(RequestSpec(1, 0.0, 6, 2))
    batch = Batch()
    batch.add(no_ids, 6, True)
    with pytest.raises(UserError, match="no prompt token ids"):
        engine.execute(batch, {1: [0, 1]})
    synthetic = Engine(cfg, dummy_weights(cfg), num_blocks=8, block_size=BLOCK, synthetic_prompts=True)
    assert synthetic.execute(batch, {1: [0, 1]}) == synthetic.execute(batch, {1: [2, 3]})
    req = make_request(2, 6, 2, cfg.shape.vocab, seed=0)
    batch = Batch()
    batch.add(req, 6, True)
    with pytest.raises(ValueError, match="cannot hold 6 tokens"):
        engine.execute(batch, {2: [0]})
    with pytest.raises(ValueError, match="block id out of range"):
        engine.execute(batch, {2: [0, 8]})
    req.num_computed = 6
    decode = Batch()
    decode.add(req, 1, False)
    with pytest.raises(ValueError, match="must be appended to request.output_ids"):
        engine.execute(decode, {2: [0, 1]})
    long = make_request(3, cfg.shape.max_model_len + 1, 1, cfg.shape.vocab, seed=0)
    batch = Batch()
    batch.add(long, long.prompt_len, True)
    with pytest.raises(UserError, match="exceeds the model's maximum"):
        engine.execute(batch, {3: list(range(8))})
