"""Optional sources on the Hugging Face hub, read through ``datasets`` (the ``hub`` extra) when online.

Nothing here runs unless a hub workload is asked for by name, so an offline machine never waits on the network.
"""

from __future__ import annotations

from typing import Any

from ascendra.errors import UserError
from ascendra.extras import needs

SHAREGPT_HUB = ("anon8231489123/ShareGPT_Vicuna_unfiltered", "ShareGPT_V3_unfiltered_cleaned_split.json")
ARXIV_HUB = "ccdv/arxiv-summarization"


def _datasets() -> Any:
    with needs("hub", what="hub workloads"):
        import datasets
    return datasets


def load_json_records(path_or_repo: str, data_file: str | None = None) -> list[dict[str, Any]]:
    """Records of a JSON file through ``datasets``: a hub repository with ``data_file`` in it, or a local file
    (the same code path, which is how it is tested offline)."""
    datasets = _datasets()
    try:
        if data_file is None:
            table = datasets.load_dataset("json", data_files=path_or_repo, split="train")
        else:
            table = datasets.load_dataset(path_or_repo, data_files=data_file, split="train")
    except Exception as exc:  # datasets raises many types (network, format); all mean "this source is unusable"
        raise UserError(f"cannot load {path_or_repo} through datasets: {type(exc).__name__}: {exc}") from None
    return list(table)


def sharegpt_hub_records() -> list[dict[str, Any]]:
    """ShareGPT V3 from the hub: the complete file, whose records have the packaged prefix's shape."""
    repo, data_file = SHAREGPT_HUB
    return load_json_records(repo, data_file)


def arxiv_hub_texts(split: str = "test") -> tuple[list[str], list[str]]:
    """Arxiv-summarization from the hub as (prompts, outputs): the article is the prompt, the abstract the output."""
    datasets = _datasets()
    try:
        table = datasets.load_dataset(ARXIV_HUB, split=split)
    except Exception as exc:  # see load_json_records
        raise UserError(f"cannot load {ARXIV_HUB} through datasets: {type(exc).__name__}: {exc}") from None
    return list(table["article"]), list(table["abstract"])
