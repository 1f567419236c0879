"""CUDA graphs for decode-only steps: one graph per padded batch size, captured on first use.

Why: a decode step of a small batch is launch-bound on a GPU (hundreds of small kernels per step); replaying a
captured graph pays one launch. Only decode-only batches on the Triton attention backend qualify, since their
shapes are fixed once padded: the batch goes up to the next captured size, the padding rows repeat the first
decode (same token, position and cache slot, so they write identical K/V into that slot and their logits are
dropped), and block tables are padded to the model's maximum length. Never used on CPU by the engine; with
``eager=True`` the same padded static-buffer path runs without capture, which is how CPU tests check it.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass

import torch

from ascendra.engine.attention import AttentionMetadata
from ascendra.engine.kv_pool import PagedKVCache
from ascendra.engine.model import DecoderModel
from ascendra.engine.triton_attention import PagedTiles, choose_splits

# Live runs drive several engines from threads of one process: one capture at a time, and each capture only
# forbids unsafe CUDA calls in its own thread (``thread_local``), so other engines keep stepping meanwhile.
_CAPTURE_LOCK = threading.Lock()
GRAPH_BATCH_SIZES = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256)


@dataclass(slots=True)
class _Graph:
    ids: torch.Tensor
    positions: torch.Tensor
    meta: AttentionMetadata
    logits: torch.Tensor
    graph: torch.cuda.CUDAGraph | None = None


class DecodeGraphs:
    """Captured decode steps of ``model`` over ``cache``, keyed by padded batch size."""

    def __init__(
        self,
        model: DecoderModel,
        cache: PagedKVCache,
        group: int,
        sizes: tuple[int, ...] = GRAPH_BATCH_SIZES,
        eager: bool = False,
    ) -> None:
        self.model = model
        self.cache = cache
        self.group = group
        self.sizes = tuple(sorted(sizes))
        self.width = -(-model.config.shape.max_model_len // cache.block_size)
        self.graphs: dict[int, _Graph] = {}
        self.eager = eager
        self.pool = None if eager else torch.cuda.graph_pool_handle()

    def padded_size(self, n: int) -> int | None:
        """The captured size a batch of ``n`` decodes runs at; None when larger than every size (run eagerly)."""
        i = bisect.bisect_left(self.sizes, n)
        return self.sizes[i] if i < len(self.sizes) else None

    def run(self, ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata) -> torch.Tensor:
        """Logits [n, vocab] of a decode-only batch prepared for the Triton backend (``meta.tiles`` one per row)."""
        assert meta.tiles is not None and not meta.prefills
        n = int(ids.shape[0])
        size = self.padded_size(n)
        assert size is not None
        g = self.graphs.get(size)
        if g is None:
            g = self._new(size, meta.sliding_window)
        self._fill(g, ids, positions, meta, n)
        rows = torch.arange(size, device=ids.device)
        if self.eager:
            self.graphs[size] = g
            return self.model.forward(g.ids, g.positions, g.meta, self.cache, rows)[:n]
        if g.graph is None:
            self._capture(g, rows)
            self.graphs[size] = g
        assert g.graph is not None
        g.graph.replay()
        return g.logits[:n]

    def _new(self, size: int, window: int | None) -> _Graph:
        dev = self.cache.k[0].device
        ar = torch.arange(size, dtype=torch.int32, device=dev)
        block_m = max(1, -(-16 // self.group))
        tiles = PagedTiles(
            block_tables=torch.zeros((size, self.width), dtype=torch.int32, device=dev),
            tile_seq=ar,
            tile_row=ar.clone(),
            tile_len=torch.ones(size, dtype=torch.int32, device=dev),
            tile_pos=torch.zeros(size, dtype=torch.int32, device=dev),
            block_m=block_m,
            splits=choose_splits(size, self.cache.num_kv_heads, self.model.config.shape.max_model_len),
        )
        meta = AttentionMetadata(
            slot_mapping=torch.zeros(size, dtype=torch.long, device=dev),
            prefills=[],
            decode_start=0,
            decode_block_tables=None,
            decode_mask=None,
            tiles=tiles,
            sliding_window=window,
        )
        ids = torch.zeros(size, dtype=torch.long, device=dev)
        positions = torch.zeros(size, dtype=torch.long, device=dev)
        return _Graph(ids, positions, meta, torch.empty(0, device=dev))

    @staticmethod
    def _fill(g: _Graph, ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata, n: int) -> None:
        """Copy the batch into the static buffers; padding rows repeat row 0."""
        assert meta.tiles is not None and g.meta.tiles is not None
        size = g.ids.shape[0]
        src_bt = meta.tiles.block_tables
        for dst, src in (
            (g.ids, ids),
            (g.positions, positions),
            (g.meta.slot_mapping, meta.slot_mapping),
            (g.meta.tiles.tile_pos, meta.tiles.tile_pos),
        ):
            dst[:n].copy_(src)
            dst[n:].copy_(src[:1].expand(size - n))
        bt = g.meta.tiles.block_tables
        w = src_bt.shape[1]
        bt[:n, :w].copy_(src_bt)
        bt[n:, :w].copy_(src_bt[:1].expand(size - n, w))

    def _capture(self, g: _Graph, rows: torch.Tensor) -> None:
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up outside capture: Triton compiles, cuBLAS picks kernels
            self.model.forward(g.ids, g.positions, g.meta, self.cache, rows)
        torch.cuda.current_stream().wait_stream(stream)
        with _CAPTURE_LOCK, torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
            g.logits = self.model.forward(g.ids, g.positions, g.meta, self.cache, rows)
        g.graph = graph
