"""The in-place paged-attention Triton kernel against dense attention, backend selection and CUDA-graph flags.

The kernel runs on CPU under Triton's interpreter in a subprocess, so ``TRITON_INTERPRET`` is set before triton
is imported there and never leaks into this process or other tests. On a CUDA machine the same checks also run
natively in bf16/fp16 on Llama-sized heads (``scripts/gpu_check.sh`` runs this file).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from ascendra.engine import Engine, EngineConfig, dummy_weights  # noqa: E402
from ascendra.engine.attention import resolve_backend  # noqa: E402
from ascendra.errors import UserError  # noqa: E402
from ascendra.models import get_model  # noqa: E402

HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (pip install triton)")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _check(*args: str, interpret: bool) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "ascendra.engine.kernel_check", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert rows and all(r["ok"] for r in rows)
    return rows


@needs_triton
def test_kernel_matches_dense_attention_in_interpreter() -> None:
    """Ragged decodes + chunks with context, GQA (groups 1-4, and 3), block-crossing contexts, sliding windows,
    block sizes 16-64, and a whole two-layer engine on the Triton backend against the full recompute; its decode
    steps also run through the CUDA-graph runner's padded static buffers (without capture on CPU) and must give
    the eager greedy tokens."""
    rows = _check("--engine", "--cuda-graphs", interpret=True)
    names = {r["case"] for r in rows}
    assert {"decodes_gqa", "mixed_chunks_and_decodes", "sliding_window", "engine"} <= names
    assert max(r["max_abs_err"] for r in rows) < 1e-3


@needs_triton
@needs_cuda
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_kernel_on_gpu(dtype: str) -> None:
    _check("--device", "cuda", "--dtype", dtype, "--cases", "all", "--engine", interpret=False)


@needs_triton
@needs_cuda
def test_cuda_graph_decodes_match_eager() -> None:
    """fp32 (no TF32 anywhere), so padded-vs-unpadded GEMM rounding is too small to flip a greedy token."""
    _check("--device", "cuda", "--dtype", "fp32", "--engine", "--cuda-graphs", interpret=False)


def test_backend_selection_and_flags() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_backend("auto", cpu, 128, 16) == "torch"
    assert resolve_backend("auto", cuda, 128, 16) == ("triton" if HAS_TRITON else "torch")
    assert resolve_backend("auto", cuda, 128, 4) == "torch"  # block too small for tl.dot: the torch path
    assert resolve_backend("torch", cuda, 128, 16) == "torch"
    with pytest.raises(UserError, match="unknown attention backend 'flash'"):
        resolve_backend("flash", cpu, 128, 16)
    with pytest.raises(UserError, match="power-of-two block size"):
        resolve_backend("triton", cpu, 128, 12)
    cfg = EngineConfig.from_model_spec(get_model("tiny"))
    weights = dummy_weights(cfg, seed=0)
    engine = Engine(cfg, weights, num_blocks=4, cuda_graphs=True)  # CPU: graphs are a no-op, fp32, torch path
    assert engine.graphs is None and engine.dtype == torch.float32 and engine.attention_backend == "torch"
    engine = Engine(cfg, weights, num_blocks=4, dtype="bf16", cuda_graphs=False)
    assert engine.dtype == torch.bfloat16 and engine.graphs is None


def test_tiles_and_key_splits() -> None:
    from ascendra.engine.triton_attention import build_tiles, choose_splits

    tiles = build_tiles([(0, 40, 5, [3, 1, 4]), (40, 1, 99, [9] * 7)], group=2, device="cpu")
    assert tiles.block_m == 16 and tiles.block_tables.shape == (2, 7)
    assert tiles.tile_seq.tolist() == [0, 0, 0, 1] and tiles.tile_row.tolist() == [0, 16, 32, 40]
    assert tiles.tile_len.tolist() == [16, 16, 8, 1] and tiles.tile_pos.tolist() == [5, 21, 37, 99]
    decodes = build_tiles([(0, 1, 7, [2]), (1, 1, 3, [5])], group=4, device="cpu", max_blocks=5)
    assert decodes.block_m == 4 and decodes.block_tables.tolist() == [[2, 0, 0, 0, 0], [5, 0, 0, 0, 0]]
    assert choose_splits(1, 8, 8000) == 16  # one long decode: spread over the GPU
    assert choose_splits(32, 8, 4096) == 1  # 256 programs already
    assert choose_splits(1, 8, 100) == 1  # short context: not worth a merge
    assert choose_splits(3, 8, 1600) == 4  # min(11, ceil(1600 / 512) = 4)
    assert choose_splits(2, 8, 3000) == 4  # min(16, 6) = 6, rounded down to a power of two
