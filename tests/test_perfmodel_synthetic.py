"""The synthetic batch log: compositions stay within serving limits and cover the ranges the brief asks for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ascendra.gpus import get_gpu
from ascendra.kv_cache import num_kv_blocks
from ascendra.models import get_model
from ascendra.perfmodel.log import parse_compositions, read_log
from ascendra.perfmodel.synthetic_log import main, synthetic_log


def test_compositions_respect_limits_and_cover_the_ranges() -> None:
    model, gpu = "llama-3.1-8b", "a100-80gb"
    kv_capacity = num_kv_blocks(get_model(model), get_gpu(gpu)) * 16
    log = synthetic_log(model, gpu, lambda p, d: 1.0, per_kind=400, seed=0, chunked_share=0.2)
    prefills, decodes = parse_compositions(log)
    tokens = np.array([sum(c for c, _ in p) + len(d) for p, d in zip(prefills, decodes, strict=True)])
    seqs = np.array([len(p) + len(d) for p, d in zip(prefills, decodes, strict=True)])
    kv = np.array([sum(c + q for c, q in p) + sum(d) + len(d) for p, d in zip(prefills, decodes, strict=True)])
    assert tokens.max() <= 8192 and seqs.max() <= 128 and kv.max() <= kv_capacity
    chunks = [c for p in prefills for c, _ in p]
    contexts = [x for d in decodes for x in d]
    assert min(chunks) >= 4 and max(chunks) > 4096
    assert all(c + q <= 8192 for p in prefills for c, q in p)
    assert any(q > 0 for p in prefills for _, q in p)  # chunked_share adds prior context
    assert max(contexts) > 4096 and max(contexts) < 8192
    by_kind = log.groupby("kind").size().to_dict()
    assert by_kind == {"prefill": 400, "decode": 400, "mixed": 400}
    decode_sizes = [len(d) for d, k in zip(decodes, log["kind"], strict=True) if k == "decode"]
    assert min(decode_sizes) == 1 and max(decode_sizes) > 120
    whole = synthetic_log(model, gpu, lambda p, d: 1.0, per_kind=100, seed=0)
    assert all(q == 0 for p in parse_compositions(whole)[0] for _, q in p)  # default: whole prompts only


def test_module_entry_writes_a_log(tmp_path: Path) -> None:
    out = tmp_path / "synthetic.csv"
    main(["--model", "tiny", "--gpu", "a100-80gb", "--per-kind", "15", "--out", str(out)])
    log = read_log(out)
    assert log.groupby("kind").size().to_dict() == {"decode": 15, "mixed": 15, "prefill": 15}
    assert (log["seconds"] > 0).all()
    with pytest.raises(SystemExit) as exc:
        main(["--model", "tiny", "--gpu", "a100-80gb", "--out", str(out)])
    assert exc.value.code == 2
