"""The paged KV cache: per layer, a pool of fixed-size blocks of K and V, addressed by block tables.

Block ids are handed out by the serving system's block manager, never by the engine, so the pool works with
any allocator: a sequence's token at position ``p`` lives in block ``table[p // block_size]`` at offset
``p % block_size``.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ascendra.engine.config import EngineConfig
from ascendra.errors import UserError
from ascendra.kv_cache import DEFAULT_BLOCK_SIZE, kv_bytes_per_block


class PagedKVCache:
    """K and V pools, one pair per layer, each [num_blocks, block_size, kv_heads, head_dim]."""

    def __init__(
        self,
        config: EngineConfig,
        num_blocks: int,
        block_size: int = DEFAULT_BLOCK_SIZE,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if num_blocks <= 0:
            raise UserError(f"KV cache: num_blocks must be positive, got {num_blocks}")
        if block_size <= 0:
            raise UserError(f"KV cache: block_size must be positive, got {block_size}")
        self.num_blocks = num_blocks
        self.block_size = block_size
        model = config.shape
        self.num_kv_heads = model.num_kv_heads
        self.head_dim = model.head_dim
        shape = (num_blocks, block_size, model.num_kv_heads, model.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(model.num_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(model.num_layers)]

    @staticmethod
    def block_bytes(
        config: EngineConfig, block_size: int = DEFAULT_BLOCK_SIZE, dtype: torch.dtype = torch.float32
    ) -> int:
        """Bytes one block takes over all layers (K and V): divide a memory budget by this to size the pool.

        ``kv_bytes_per_block`` of the shape at the pool's dtype (the engine may run fp32; the table assumes 16 bits)."""
        itemsize = torch.empty((), dtype=dtype).element_size()
        return kv_bytes_per_block(replace(config.shape, dtype_bytes=itemsize), block_size=block_size)

    @property
    def num_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v)

    def slots(self, block_table: list[int], start: int, stop: int) -> list[int]:
        """Flat slot indices of positions [start, stop) of a sequence."""
        bs = self.block_size
        return [block_table[p // bs] * bs + p % bs for p in range(start, stop)]

    def write(self, layer: int, slot_mapping: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store new K/V rows [T, kv_heads, head_dim] at flat slots [T]."""
        self.k[layer].view(-1, self.num_kv_heads, self.head_dim).index_copy_(0, slot_mapping, k)
        self.v[layer].view(-1, self.num_kv_heads, self.head_dim).index_copy_(0, slot_mapping, v)

    def read_blocks(self, block_ids: list[int]) -> torch.Tensor:
        """A copy of whole blocks, every layer's K and V: [layers, 2, len(block_ids), block_size, kv_heads,
        head_dim], what a KV move between engines carries (positions past the request's are garbage, as in the
        pool, and are masked or overwritten there too)."""
        index = torch.tensor(block_ids, dtype=torch.long, device=self.k[0].device)
        out = self.k[0].new_empty((len(self.k), 2, len(block_ids), *self.k[0].shape[1:]))
        for layer, (k, v) in enumerate(zip(self.k, self.v, strict=True)):
            torch.index_select(k, 0, index, out=out[layer, 0])
            torch.index_select(v, 0, index, out=out[layer, 1])
        return out

    def write_blocks(self, block_ids: list[int], pages: torch.Tensor) -> None:
        """Store ``pages`` (from ``read_blocks`` of another pool of the same shapes) into blocks ``block_ids``."""
        expected = (len(self.k), 2, len(block_ids), *self.k[0].shape[1:])
        if tuple(pages.shape) != expected:
            raise ValueError(f"KV pages of shape {tuple(pages.shape)} do not fit {expected}")
        index = torch.tensor(block_ids, dtype=torch.long, device=self.k[0].device)
        pages = pages.to(self.k[0].device, self.k[0].dtype)
        for layer, (k, v) in enumerate(zip(self.k, self.v, strict=True)):
            k.index_copy_(0, index, pages[layer, 0])
            v.index_copy_(0, index, pages[layer, 1])

    def gather(self, layer: int, block_ids: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``length`` positions of one sequence as contiguous [length, kv_heads, head_dim] K and V."""
        k = self.k[layer][block_ids].flatten(0, 1)[:length]
        v = self.v[layer][block_ids].flatten(0, 1)[:length]
        return k, v

    def gather_padded(self, layer: int, block_tables: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V of several sequences [B, max_blocks * block_size, kv_heads, head_dim] from padded tables
        [B, max_blocks]; positions past each sequence's length are garbage and must be masked."""
        k = self.k[layer][block_tables].flatten(1, 2)
        v = self.v[layer][block_tables].flatten(1, 2)
        return k, v
