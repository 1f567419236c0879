"""Cross-check of the harness's load generator against vLLM's own benchmark client (`vllm bench serve`'s code,
``vllm.benchmarks.serve``) on the same server: `ascbench serve`'s tiny model on loopback.

vLLM's client needs a tokenizer for its random dataset; offline we write one: a character-level tokenizer over
printable ASCII without whitespace (one id per character, no special tokens added), so a prompt of n ids decodes
to n characters, which the server (one token per UTF-8 byte) counts as n tokens again: both tools send prompts of
exactly the same length. Both clients pace the same number of requests at the same fixed rate (vLLM: a gamma
process with huge burstiness, i.e. constant gaps; the harness: ``arrival=fixed``), with the same lengths.

Tolerances, from runs on a 2-core CPU host (24-32 requests, 20 QPS, prompts 64, outputs 16):
- Throughput (completed requests / time to the last finish) agreed within 4%: paced below capacity, it is set by
  the arrival schedule, so 15% is a wide margin that still catches a client that miscounts or falls behind.
- Mean TTFT was 5-6 ms (vLLM) vs 8 ms (harness): the harness stamps TTFT from the scheduled arrival and sends
  with httpx, vLLM from just before its aiohttp POST, a fixed client-side cost of a few ms that a relative
  bound on a 5 ms value cannot absorb. So TTFT must agree within 15 ms absolute: far below what a scheduling or
  counting error would add (a prefill batch, a token interval), far above the two clients' overheads.
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

from ascendra.config import RunConfig  # noqa: E402
from ascendra.live.engines import LiveOptions  # noqa: E402
from ascendra.loadgen import run_openai  # noqa: E402
from ascendra.metrics import SLO, summarize  # noqa: E402
from ascendra.records import records_frame  # noqa: E402
from ascendra.serve.server import running_server  # noqa: E402
from workloads import make_workload  # noqa: E402

NUM_REQUESTS, PROMPT, OUTPUT, RATE = 24, 64, 16, 20.0
WORKLOAD = f"fixed:prompt={PROMPT},output={OUTPUT}"
THROUGHPUT_TOLERANCE = 0.15
TTFT_TOLERANCE_S = 0.015


def _char_tokenizer(folder: Path) -> Path:
    """A character-level tokenizer over ``!``..``~`` (ids 1..94, ``[UNK]`` = 0, special), saved for HF loading."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, **{chr(code): code - 32 for code in range(33, 127)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]").save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": len(vocab)}))
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


def test_the_harness_and_vllm_bench_serve_agree_on_ttft_and_throughput(tmp_path: Path) -> None:
    tokenizer = _char_tokenizer(tmp_path / "tokenizer")
    served = RunConfig(system="sarathi", model="tiny", instances=1, workload=WORKLOAD, backend="engine")
    with running_server(served, LiveOptions(num_blocks=256)) as url:
        warm = make_workload(WORKLOAD, model="tiny", num_requests=4, rate=RATE, arrival="fixed", seed=2)
        assert run_openai(warm, url, model="tiny", timeout=60).errors == {}
        vllm = _vllm_bench(url, tokenizer)
        workload = make_workload(WORKLOAD, model="tiny", num_requests=NUM_REQUESTS, rate=RATE, arrival="fixed", seed=1)
        result = run_openai(workload, url, model="tiny", timeout=60)
    ours = summarize(records_frame(result.requests), SLO(1.0, 0.15))

    assert vllm["completed"] == NUM_REQUESTS and vllm["failed"] == 0
    assert vllm["total_input_tokens"] == NUM_REQUESTS * PROMPT  # the tokenizer kept every prompt's length
    assert vllm["total_output_tokens"] == NUM_REQUESTS * OUTPUT
    assert result.errors == {} and ours["finished"] == NUM_REQUESTS

    vllm_ttft = float(vllm["mean_ttft_ms"]) / 1000
    assert abs(ours["ttft_mean"] - vllm_ttft) < TTFT_TOLERANCE_S, (ours["ttft_mean"], vllm_ttft)
    vllm_rps = float(vllm["request_throughput"])
    assert abs(ours["throughput_rps"] - vllm_rps) / vllm_rps < THROUGHPUT_TOLERANCE, (ours["throughput_rps"], vllm_rps)
