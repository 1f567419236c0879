"""What moving requests between instances cost a run: how many moves, how much KV crossed the link, how long
requests ran nowhere (downtime) and how long whole migrations took, from the coordinator's move records."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ascendra.coordinator import MoveRecord

#: The keys ``move_stats`` returns, in order (NaN where no move carried KV).
MOVE_KEYS = (
    "moves",
    "kv_moves",
    "kv_gb",
    "downtime_p50",
    "downtime_p99",
    "downtime_max",
    "migration_p50",
    "migration_p99",
    "precopied_share",
)


def move_stats(moves: Sequence[MoveRecord], kv_bytes_per_token: int) -> dict[str, float]:
    """Counts of all moves and of those carrying KV; for the latter: GB of KV moved (pre-copies included),
    percentiles of the downtime (from leaving the source to reaching the target, seconds) and of the whole
    migration (from its first copy), and the share of KV tokens sent by pre-copy stages."""
    with_kv = [m for m in moves if m.kv_tokens and m.delivered is not None]
    out: dict[str, float] = dict.fromkeys(MOVE_KEYS, float("nan"))
    out["moves"] = len(moves)
    out["kv_moves"] = len(with_kv)
    if not with_kv:
        out["kv_gb"] = 0.0
        return out
    tokens = np.array([m.kv_tokens for m in with_kv], dtype=float)
    down = np.array([m.latency for m in with_kv])
    whole = np.array([m.delivered - m.started for m in with_kv])  # type: ignore[operator]
    out["kv_gb"] = float(tokens.sum()) * kv_bytes_per_token / 1e9
    out["downtime_p50"], out["downtime_p99"] = (float(q) for q in np.percentile(down, [50, 99]))
    out["downtime_max"] = float(down.max())
    out["migration_p50"], out["migration_p99"] = (float(q) for q in np.percentile(whole, [50, 99]))
    out["precopied_share"] = float(sum(m.precopied for m in with_kv) / tokens.sum())
    return out
