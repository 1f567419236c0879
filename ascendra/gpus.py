"""GPU datasheet numbers used by the performance model (peak rates) and KV sizing (memory)."""

from __future__ import annotations

from dataclasses import dataclass

from ascendra.errors import UserError


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """Dense fp16/bf16 tensor-core peak, HBM bandwidth, memory and SM count of one GPU (SXM parts)."""

    name: str
    peak_flops: float
    mem_bandwidth: float
    memory_bytes: int
    profile_dir: str  # folder name of the GPU's operation profiles
    num_sms: int  # streaming multiprocessors: how many attention tiles run in one wave


GPUS: dict[str, GpuSpec] = {
    g.name: g
    for g in (
        GpuSpec("a100-80gb", 312e12, 2.039e12, 80 * 1024**3, "a100", 108),
        GpuSpec("h100-80gb", 989e12, 3.35e12, 80 * 1024**3, "h100", 132),
    )
}


def get_gpu(name: str) -> GpuSpec:
    try:
        return GPUS[name]
    except KeyError:
        raise UserError(f"unknown GPU {name!r}; known GPUs: {', '.join(GPUS)}") from None
