"""Trace loaders on small files written here, their validation errors, and how trace names find their files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ascendra.errors import UserError
from workloads import load_pool
from workloads.traces import read_azure_csv, read_length_csv, read_mooncake_jsonl, read_trace_file

SHARED_TRACES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "traces"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_length_csv_ignores_extra_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", ",num_prefill_tokens,num_decode_tokens,pd_ratio\n7,100,20,5.0\n9,3,1,3.0\n")
    pool = read_length_csv(path)
    assert pool.prompt.tolist() == [100, 3]
    assert pool.output.tolist() == [20, 1]
    assert pool.timestamps is None


def test_azure_csv_timestamps_become_seconds(tmp_path: Path) -> None:
    path = write(
        tmp_path / "azure.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:17:03.9799600,4808,10\n"
        "2023-11-16 18:17:04.4799600,3180,8\n"
        "2023-11-16 18:17:06.0000000,10,2\n",
    )
    pool = read_trace_file(path)
    np.testing.assert_allclose(pool.timestamps, [0.0, 0.5, 2.02004])
    assert pool.prompt.tolist() == [4808, 3180, 10]
    assert pool.output.tolist() == [10, 8, 2]


def test_mooncake_jsonl_is_sorted_and_in_seconds(tmp_path: Path) -> None:
    path = write(
        tmp_path / "mc.jsonl",
        '{"timestamp": 3000, "input_length": 50, "output_length": 5, "hash_ids": [0]}\n'
        '{"timestamp": 1000, "input_length": 70, "output_length": 7, "hash_ids": [0, 1]}\n'
        '{"timestamp": 1500, "input_length": 60, "output_length": 6, "hash_ids": []}\n',
    )
    pool = read_trace_file(path)
    np.testing.assert_allclose(pool.timestamps, [0.0, 0.5, 2.0])
    assert pool.prompt.tolist() == [70, 60, 50]
    assert pool.output.tolist() == [7, 6, 5]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("num_prefill_tokens,other\n1,2\n", "lacks column.*num_decode_tokens"),
        ("num_prefill_tokens,num_decode_tokens\n", "no rows"),
        ("num_prefill_tokens,num_decode_tokens\n10,-3\n", r"integers >= 1, row 1 has -3"),
        ("num_prefill_tokens,num_decode_tokens\n10,3\n1.5,4\n", r"row 2 has 1.5"),
        ("num_prefill_tokens,num_decode_tokens\n10,3\nabc,4\n", r"row 2 has 'abc'"),
        ("num_prefill_tokens,num_decode_tokens\n0,3\n", "integers >= 1"),
        ("num_prefill_tokens,num_decode_tokens\n10,\n", "integers >= 1, row 1 has nothing"),
        ("", "cannot read trace"),
    ],
)
def test_length_csv_validation(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        read_length_csv(write(tmp_path / "bad.csv", text))


def test_timestamped_validation(tmp_path: Path) -> None:
    azure = write(tmp_path / "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,10,2\n")
    with pytest.raises(UserError, match="unreadable TIMESTAMP"):
        read_azure_csv(azure)
    mooncake = write(tmp_path / "m.jsonl", '{"timestamp": 0, "input_length": 5}\n')
    with pytest.raises(UserError, match="lacks column.*output_length"):
        read_mooncake_jsonl(mooncake)
    garbage = write(tmp_path / "g.jsonl", "not json\n")
    with pytest.raises(UserError, match="cannot read trace"):
        read_mooncake_jsonl(garbage)


def test_names_resolve_in_data_dir_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    traces = tmp_path / "traces"
    traces.mkdir()
    write(traces / "longbench_distserve_filtered.csv", "num_prefill_tokens,num_decode_tokens\n11,22\n")
    assert load_pool("longbench", data_dir=tmp_path).prompt.tolist() == [11]
    monkeypatch.setenv("ASCENDRA_DATA_DIR", str(traces))
    assert load_pool("longbench").output.tolist() == [22]


def test_missing_trace_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        load_pool("arxiv", data_dir=tmp_path)
    message = str(info.value)
    assert "pass --data-dir DIR containing arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv" in message
    assert "ASCENDRA_DATA_DIR" in message and "\n" not in message


def test_paths_and_unknown_names(tmp_path: Path) -> None:
    path = write(tmp_path / "mine.csv", "num_prefill_tokens,num_decode_tokens\n5,6\n")
    assert load_pool(str(path)).prompt.tolist() == [5]
    with pytest.raises(UserError, match="no such workload file"):
        load_pool(str(tmp_path / "absent.csv"))
    with pytest.raises(UserError, match="unknown workload 'sharegtp'"):
        load_pool("sharegtp")


@pytest.mark.skipif(not SHARED_TRACES.is_dir(), reason="reference traces (../shared/data/traces) are absent")
def test_shared_traces_load_with_their_documented_sizes() -> None:
    data_dir = SHARED_TRACES.parent
    sizes = {"sharegpt-8k": 30_731, "arxiv": 28_257, "longbench": 1_274, "azure-code": 8_819, "azure-conv": 19_366}
    sizes["mooncake"] = 12_031
    for name, size in sizes.items():
        pool = load_pool(name, data_dir=data_dir)
        assert len(pool) == size, name
        assert (pool.timestamps is not None) == name.startswith(("azure", "mooncake")), name
    code = load_pool("azure-code", data_dir=data_dir)
    assert np.all(np.diff(code.timestamps) >= 0) and 3400 < code.timestamps[-1] < 3500
