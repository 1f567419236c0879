"""Move statistics on hand-built move records."""

from __future__ import annotations

import math

import pytest

from ascendra.coordinator import MoveRecord
from ascendra.metrics.moves import move_stats


def test_move_stats_count_kv_and_time_only_moves_that_carry_kv() -> None:
    offload = MoveRecord(0, "lp0", "hp0", 0, decided=1.0, delivered=1.0)
    hand_off = MoveRecord(1, "prefill0", "decode0", 1000, decided=2.0, delivered=2.5)
    migration = MoveRecord(2, "gpu0", "gpu1", 3000, decided=4.0, delivered=4.1, precopied=2000, started=3.0, stages=3)
    stats = move_stats([offload, hand_off, migration], kv_bytes_per_token=1_000_000)
    assert (stats["moves"], stats["kv_moves"]) == (3, 2)
    assert stats["kv_gb"] == pytest.approx(4.0)  # 4,000 tokens of 1 MB
    assert stats["downtime_p50"] == pytest.approx(0.3) and stats["downtime_max"] == pytest.approx(0.5)
    assert stats["migration_p50"] == pytest.approx((0.5 + 1.1) / 2)
    assert stats["precopied_share"] == pytest.approx(0.5)


def test_no_kv_moves_leave_the_timings_undefined() -> None:
    stats = move_stats([MoveRecord(0, "lp0", "hp0", 0, decided=1.0, delivered=1.0)], kv_bytes_per_token=10)
    assert (stats["moves"], stats["kv_moves"], stats["kv_gb"]) == (1, 0, 0.0)
    assert math.isnan(stats["downtime_p99"])
