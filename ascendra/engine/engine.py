"""The execution engine: runs one scheduler ``Batch`` as one forward pass and samples the next tokens.

The engine owns the model weights and the paged KV pool but not the block allocation: the caller passes each
request's block table (from the serving system's block manager), grown to cover the batch's new tokens.
A request's token sequence is its prompt ids followed by ``request.output_ids``; the caller appends each
sampled id there before the request's next decode.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ascendra.batch import Batch, BatchItem
from ascendra.engine.attention import AttentionMetadata, build_metadata, resolve_backend
from ascendra.engine.config import EngineConfig
from ascendra.engine.kv_pool import PagedKVCache
from ascendra.engine.model import DecoderModel
from ascendra.engine.sampler import Sampler
from ascendra.engine.weights import parse_dtype
from ascendra.errors import UserError
from ascendra.kv_cache import DEFAULT_BLOCK_SIZE
from ascendra.request import Request

if TYPE_CHECKING:
    from ascendra.engine.cuda_graphs import DecodeGraphs


@dataclass(slots=True)
class _Prepared:
    """A batch flattened for one forward pass (prefill chunks first, then decodes)."""

    input_ids: torch.Tensor
    positions: torch.Tensor
    meta: AttentionMetadata
    order: list[BatchItem]  # items in flat-row order
    starts: list[int]  # first flat row of each item in ``order``


class Engine:
    """A Llama-family decoder with a paged KV cache that executes hybrid prefill/decode batches."""

    def __init__(
        self,
        config: EngineConfig,
        weights: Mapping[str, torch.Tensor],
        num_blocks: int,
        block_size: int = DEFAULT_BLOCK_SIZE,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype | None = None,
        temperature: float = 0.0,
        seed: int = 0,
        synthetic_prompts: bool = False,
        attention_backend: str = "auto",
        cuda_graphs: bool | None = None,
    ) -> None:
        """``synthetic_prompts``: requests without prompt ids (length-only traces) get seeded random ids derived
        from their request id instead of being rejected; for performance runs only. ``dtype`` defaults to fp32 on
        CPU and bf16 on CUDA. ``attention_backend``: ``auto`` (Triton in-place paged attention on CUDA, torch
        gather + SDPA on CPU), ``torch`` or ``triton``. ``cuda_graphs``: replay captured graphs for decode-only
        steps (CUDA with the Triton backend only; ignored elsewhere); None reads ``ASCENDRA_CUDA_GRAPHS`` (``0``
        disables them for every engine a CLI builds), default on."""
        self.config = config
        self.device = torch.device(device)
        self.dtype = parse_dtype(dtype if dtype is not None else ("fp32" if self.device.type == "cpu" else "bf16"))
        self.model = DecoderModel(config, weights, self.device, self.dtype)
        self.kv_cache = PagedKVCache(config, num_blocks, block_size, self.device, self.dtype)
        self.sampler = Sampler(temperature, seed, self.device)
        self.synthetic_prompts = synthetic_prompts
        self.attention_backend = resolve_backend(attention_backend, self.device, config.shape.head_dim, block_size)
        self._group = config.shape.num_heads // config.shape.num_kv_heads
        self.graphs: DecodeGraphs | None = None
        if cuda_graphs is None:
            cuda_graphs = os.environ.get("ASCENDRA_CUDA_GRAPHS", "1") != "0"
        if cuda_graphs and self.device.type == "cuda" and self.attention_backend == "triton":
            from ascendra.engine.cuda_graphs import DecodeGraphs

            self.graphs = DecodeGraphs(self.model, self.kv_cache, self._group)

    @property
    def block_size(self) -> int:
        return self.kv_cache.block_size

    @property
    def num_blocks(self) -> int:
        return self.kv_cache.num_blocks

    def execute(self, batch: Batch, block_tables: Mapping[int, list[int]]) -> dict[int, int | None]:
        """Run ``batch``; return request id -> next token for items that complete their prefill or decode,
        None for partial prefill chunks. The batch's K/V are written into the cache."""
        prep = self._prepare(batch, block_tables)
        emitting = [
            (item, start + item.num_tokens - 1)
            for item, start in zip(prep.order, prep.starts, strict=True)
            if _emits(item)
        ]
        n = len(prep.order)
        if (
            self.graphs is not None
            and not prep.meta.prefills
            and prep.meta.decode_start == 0
            and (self.graphs.padded_size(n) is not None)
        ):
            logits = self.graphs.run(prep.input_ids, prep.positions, prep.meta)  # decode-only: every row emits
        else:
            rows = torch.tensor([row for _, row in emitting], dtype=torch.long, device=self.device)
            logits = self.model.forward(prep.input_ids, prep.positions, prep.meta, self.kv_cache, rows)
        tokens = self.sampler.sample(logits, [item.request for item, _ in emitting])
        out: dict[int, int | None] = {request.id: None for request in batch.requests()}
        for (item, _), token in zip(emitting, tokens, strict=True):
            out[item.request.id] = token
        return out

    def logits(self, batch: Batch, block_tables: Mapping[int, list[int]]) -> dict[int, torch.Tensor]:
        """Run ``batch`` like ``execute`` (K/V are written) but return fp32 logits [num_tokens, vocab] for every
        new token of every item, by request id: for checking the engine against a reference."""
        prep = self._prepare(batch, block_tables)
        total = int(prep.input_ids.shape[0])
        rows = torch.arange(total, device=self.device)
        logits = self.model.forward(prep.input_ids, prep.positions, prep.meta, self.kv_cache, rows)
        return {
            item.request.id: logits[start : start + item.num_tokens]
            for item, start in zip(prep.order, prep.starts, strict=True)
        }

    def token_ids(self, request: Request) -> list[int]:
        """The request's known sequence: prompt ids followed by its generated ids."""
        return self._tokens(request, 0, request.prompt_len + len(request.output_ids))

    def _prompt_ids(self, request: Request) -> list[int] | tuple[int, ...]:
        spec = request.spec
        if spec.prompt_ids is not None:
            if len(spec.prompt_ids) != spec.prompt_tokens:
                raise UserError(
                    f"request {spec.request_id}: {len(spec.prompt_ids)} prompt ids but "
                    f"prompt_tokens={spec.prompt_tokens}"
                )
            return spec.prompt_ids
        if self.synthetic_prompts:
            gen = torch.Generator().manual_seed(spec.request_id)
            return torch.randint(self.config.shape.vocab, (spec.prompt_tokens,), generator=gen).tolist()
        raise UserError(
            f"request {spec.request_id} has no prompt token ids; the real engine needs a tokenised workload "
            "(or synthetic prompts for performance runs)"
        )

    def _tokens(self, request: Request, start: int, stop: int) -> list[int]:
        """Tokens [start, stop) of prompt + output ids, touching the prompt only when the range reaches into it
        (decodes read just the last generated id)."""
        n_prompt = request.prompt_len
        out: list[int] = []
        if start < n_prompt:
            out.extend(self._prompt_ids(request)[start : min(stop, n_prompt)])
        if stop > n_prompt:
            out.extend(request.output_ids[max(0, start - n_prompt) : stop - n_prompt])
        return out

    def _prepare(self, batch: Batch, block_tables: Mapping[int, list[int]]) -> _Prepared:
        if not batch:
            raise ValueError("cannot execute an empty batch")
        order = batch.prefills + batch.decode_items()
        ids: list[int] = []
        positions: list[int] = []
        starts: list[int] = []
        prefills: list[tuple[int, int, list[int]]] = []
        decodes: list[tuple[int, list[int]]] = []
        seen: set[int] = set()
        for item in order:
            rid = item.request.id
            if rid in seen:
                raise ValueError(f"request {rid} appears twice in one batch")
            seen.add(rid)
            end = item.context + item.num_tokens
            if item.num_tokens <= 0 or item.context < 0 or (not item.is_prefill and item.num_tokens != 1):
                raise ValueError(f"request {rid}: invalid batch item ({item.num_tokens} tokens at {item.context})")
            if end > self.config.shape.max_model_len:
                raise UserError(
                    f"request {rid}: sequence of {end} tokens exceeds the model's maximum of "
                    f"{self.config.shape.max_model_len} positions"
                )
            known = item.request.prompt_len + len(item.request.output_ids)
            if item.is_prefill and end > known:
                raise ValueError(f"request {rid}: prefill up to token {end} but only {known} tokens are known")
            if not item.is_prefill and item.context != known - 1:
                raise ValueError(
                    f"request {rid}: decode at position {item.context} but {known} tokens are known; the last "
                    "sampled token must be appended to request.output_ids"
                )
            table = block_tables.get(rid)
            if table is None:
                raise ValueError(f"request {rid}: no block table")
            if len(table) * self.block_size < end:
                raise ValueError(
                    f"request {rid}: block table of {len(table)} blocks cannot hold {end} tokens "
                    f"(block size {self.block_size})"
                )
            needed = table[: -(-end // self.block_size)]
            if any(not 0 <= b < self.num_blocks for b in needed):
                raise ValueError(f"request {rid}: block id out of range [0, {self.num_blocks}) in {needed}")
            chunk = self._tokens(item.request, item.context, end)
            if any(not 0 <= tok < self.config.shape.vocab for tok in chunk):
                raise UserError(f"request {rid}: token id outside the vocabulary of {self.config.shape.vocab}")
            starts.append(len(ids))
            ids.extend(chunk)
            positions.extend(range(item.context, end))
            if item.is_prefill:
                prefills.append((item.context, item.num_tokens, needed))
            else:
                decodes.append((item.context, needed))
        meta = build_metadata(
            prefills,
            decodes,
            self.kv_cache,
            self.config.sliding_window,
            self.device,
            self.attention_backend,
            self._group,
        )
        return _Prepared(
            input_ids=torch.tensor(ids, dtype=torch.long, device=self.device),
            positions=torch.tensor(positions, dtype=torch.long, device=self.device),
            meta=meta,
            order=order,
            starts=starts,
        )


def _emits(item: BatchItem) -> bool:
    """A decode always emits; a prefill chunk emits when it completes the request's prefill target."""
    return not item.is_prefill or item.context + item.num_tokens >= item.request.prefill_target
