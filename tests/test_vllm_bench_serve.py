"""Cross-check of the harness's load generator against vLLM's own benchmark client (`vllm bench serve`'s code,
``vllm.benchmarks.serve``) on the same server: `ascbench serve` with the tiny model, in its own process.

vLLM's client needs a tokenizer for its random dataset; offline we write one: a character-level tokenizer over
printable ASCII without whitespace (one id per character, no special tokens added), so a prompt of n ids decodes
to n characters, which the server (one token per UTF-8 byte) counts as n tokens again: both tools send prompts of
exactly the same length. Both clients pace the same number of requests at the same fixed rate (vLLM: a gamma
process with huge burstiness, i.e. constant gaps; the harness: ``arrival=fixed``), with the same lengths.

Both clients start a request's TTFT when they send it (the harness: when its arrival timer fires; the timer's
~1 ms lateness is reported as send lag). On a 2-core CPU host (48 requests, 10 QPS, prompts 1024, outputs 16)
mean and median TTFT (about 25 ms) agreed within 4% and throughput within 2% over four runs; the issue's bound,
15%, is asserted for both. With 64-token prompts TTFT is ~5 ms and the clients' own sub-millisecond costs alone
move it by 10-20%: the test uses prompts long enough that the server's work dominates what is measured.

A burst of unrelated work on a shared 2-core host once raised one run's mean TTFT by 40% (38 vs 27 ms), which
says nothing about the clients. So the tools take turns over ``ROUNDS`` rounds (vLLM first in even rounds, the
harness first in odd ones) and each tool is represented by its best round (lowest TTFT, highest throughput), the
usual way to measure on a noisy host; a tool that disagrees systematically still fails, in every round.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("vllm.benchmarks.serve")
pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")
tokenizers = pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")

from serve_process import ascbench_serve  # noqa: E402

from ascendra.harness.loadgen import run_openai  # noqa: E402
from ascendra.metrics import SLO, summarize  # noqa: E402
from ascendra.records import records_frame  # noqa: E402
from workloads import make_workload  # noqa: E402

NUM_REQUESTS, PROMPT, OUTPUT, RATE = 48, 1024, 16, 10.0
ROUNDS = 3
WORKLOAD = f"fixed:prompt={PROMPT},output={OUTPUT}"
TOLERANCE = 0.15


def _char_tokenizer(folder: Path) -> Path:
    """A character-level tokenizer over ``!``..``~`` (ids 1..94, ``[UNK]`` = 0, special), saved for HF loading."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, **{chr(code): code - 32 for code in range(33, 127)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]").save_pretrained(folder)
    config = {"model_type": "gpt2", "vocab_size": len(vocab), "bos_token_id": None, "eos_token_id": None}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _vllm_bench(url: str, tokenizer: Path) -> dict[str, float]:
    from vllm.benchmarks.serve import add_cli_args, main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    argv = ["--backend", "vllm", "--base-url", url, "--endpoint", "/v1/completions", "--model", "tiny"]
    argv += ["--tokenizer", str(tokenizer), "--dataset-name", "random", "--random-input-len", str(PROMPT)]
    argv += ["--random-output-len", str(OUTPUT), "--num-prompts", str(NUM_REQUESTS), "--request-rate", str(RATE)]
    argv += ["--burstiness", "1e6", "--ignore-eos", "--temperature", "0", "--disable-tqdm", "--num-warmups", "0"]
    return main(parser.parse_args(argv))


def _harness(url: str) -> dict[str, float]:
    workload = make_workload(WORKLOAD, model="tiny", num_requests=NUM_REQUESTS, rate=RATE, arrival="fixed", seed=1)
    result = run_openai(workload, url, model="tiny", timeout=60)
    assert result.errors == {}
    ours = summarize(records_frame(result.requests), SLO(1.0, 0.15))
    assert ours["finished"] == NUM_REQUESTS
    return {"mean TTFT": ours["ttft_mean"], "median TTFT": ours["ttft_p50"], "throughput": ours["throughput_rps"]}


def _reference(url: str, tokenizer: Path) -> dict[str, float]:
    vllm = _vllm_bench(url, tokenizer)
    assert vllm["completed"] == NUM_REQUESTS and vllm["failed"] == 0
    assert vllm["total_input_tokens"] == NUM_REQUESTS * PROMPT  # the tokenizer kept every prompt's length
    assert vllm["total_output_tokens"] == NUM_REQUESTS * OUTPUT
    return {
        "mean TTFT": float(vllm["mean_ttft_ms"]) / 1000,
        "median TTFT": float(vllm["median_ttft_ms"]) / 1000,
        "throughput": float(vllm["request_throughput"]),
    }


def _best(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: (max if name == "throughput" else min)(run[name] for run in runs) for name in runs[0]}


def test_the_harness_and_vllm_bench_serve_agree_on_ttft_and_throughput(tmp_path: Path) -> None:
    tokenizer = _char_tokenizer(tmp_path / "tokenizer")
    ours: list[dict[str, float]] = []
    reference: list[dict[str, float]] = []
    with ascbench_serve("--system", "sarathi", "--model", "tiny", "--instances", "1", "--kv-blocks", "512") as url:
        warm = make_workload(WORKLOAD, model="tiny", num_requests=4, rate=RATE, arrival="fixed", seed=2)
        assert run_openai(warm, url, model="tiny", timeout=60).errors == {}
        for round_ in range(ROUNDS):
            turns = [lambda: reference.append(_reference(url, tokenizer)), lambda: ours.append(_harness(url))]
            for turn in turns if round_ % 2 == 0 else turns[::-1]:
                turn()

    harness, vllm = _best(ours), _best(reference)
    disagree = {
        name: (harness[name], vllm[name]) for name in vllm if abs(harness[name] - vllm[name]) / vllm[name] >= TOLERANCE
    }
    assert not disagree, (disagree, ours, reference)
