"""One summary row per run: every number a sweep's results table needs, from the records table alone."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from ascendra.metrics.attainment import ATTAINMENT_DEFINITIONS, SLO, class_masks, median_scheduling_delay
from ascendra.metrics.latency import Latencies, latencies, mean, percentiles
from ascendra.metrics.throughput import throughput
from ascendra.records import records_and_times
from ascendra.request import Request

#: Summary key of each attainment definition (``attainment`` alone is the paper's).
ATTAINMENT_KEYS: dict[str, str] = {
    "paper": "attainment",
    "strict": "attainment_strict",
    "strict-p99": "attainment_strict_p99",
    "distserve": "attainment_distserve",
    "sarathi": "attainment_sarathi",
}


def summarize(records: pd.DataFrame | Latencies, slo: SLO) -> dict[str, float]:
    """Summary of one run under ``slo``. Latency values are seconds; NaN where nothing was measured.

    Latency statistics cover the requests that produced the value (a TTFT needs a first token, a gap two tokens,
    an E2E a finish); attainment covers every arrived request (see ``ascendra.metrics.attainment``).

    | key | meaning |
    |---|---|
    | `ttft_slo`, `tbt_slo` | the SLO the row was judged against |
    | `arrived` | requests in the table (every arrived request) |
    | `finished` | requests with a finish time, not dropped |
    | `dropped` | requests dropped by admission control |
    | `cancelled` | requests whose client went away before they finished (served requests) |
    | `unfinished` | none of these (still waiting or running when the run ended) |
    | `offloaded` | requests offloaded from an LP to the HP instance |
    | `preempted` | requests preempted at least once |
    | `preemptions` | total preemptions over all requests |
    | `attainment` | paper definition: share of arrived requests with TTFT and mean TBT within the SLO |
    | `attainment_strict` | share with TTFT and every gap within the SLO |
    | `attainment_strict_p99` | share with TTFT and the request's own P99 gap within the SLO |
    | `attainment_distserve` | share with TTFT and DistServe's TPOT within the SLO |
    | `attainment_sarathi` | 1.0 if P99 of all gaps <= TBT SLO and median scheduling delay <= 2 s, else 0.0; |
    |   | NaN when scheduling times were not recorded (``--backend openai``, ``vllm-engine``) |
    | `ttft_p50`, `ttft_p90`, `ttft_p99`, `ttft_mean` | TTFT over requests that emitted a first token |
    | `tbt_p50`, `tbt_p90`, `tbt_p99`, `tbt_mean` | over all TBT gaps of all requests pooled (token-weighted) |
    | `req_mean_tbt_p50`, `req_mean_tbt_p90`, `req_mean_tbt_p99`, `req_mean_tbt_mean` | over per-request mean TBT |
    |   | (requests with >= 2 tokens; each request weighs the same) |
    | `e2e_p50`, `e2e_p99`, `e2e_mean` | finish - arrival over finished requests |
    | `normalized_latency_mean` | mean over finished requests of E2E / output tokens (s per token) |
    | `sched_delay_p50` | median arrival -> first scheduling over all arrived, never-scheduled = infinite; |
    |   | NaN when not recorded |
    |   | (the value Sarathi-Serve bounds by 2 s; null in JSON when infinite) |
    | `sched_delay_mean` | mean arrival -> first scheduling over scheduled requests |
    | `span_s` | first arrival -> last emitted token (the throughput denominator) |
    | `throughput_rps` | finished requests per second of span |
    | `throughput_tps` | emitted output tokens per second of span |
    | `arrived[C]`, `attainment[C]`, `attainment_strict[C]`... | per SLO class ``C`` (runs with SLO classes |
    |   | only): its arrived requests and its attainment under every definition, each request judged against |
    |   | its own SLOs; the keys without ``[C]`` are over every request (capacity uses those: overall attainment) |
    | `ttft_p99[C]`, `tbt_p99[C]` | the class's P99 TTFT and P99 TBT gap |

    With SLO classes, ``ttft_slo`` / ``tbt_slo`` are the run's, which only requests whose class sets none use.
    """
    lat = records if isinstance(records, Latencies) else latencies(records)
    arrived = len(lat.requests)
    out: dict[str, float] = {"ttft_slo": slo.ttft, "tbt_slo": slo.tbt}

    finished = int(lat.column("finished").sum())
    dropped = int(lat.column("dropped").sum())
    cancelled = int(lat.column("cancelled").sum())
    out["arrived"] = arrived
    out["finished"] = finished
    out["dropped"] = dropped
    out["cancelled"] = cancelled
    out["unfinished"] = arrived - finished - dropped - cancelled
    preemptions = lat.column("preemptions")
    out["offloaded"] = int(lat.column("offloaded").sum())
    out["preempted"] = int((preemptions > 0).sum())
    out["preemptions"] = int(preemptions.sum())

    for definition, key in ATTAINMENT_KEYS.items():
        out[key] = ATTAINMENT_DEFINITIONS[definition](lat, slo)

    ttft = lat.column("ttft")
    req_mean_tbt = lat.column("mean_tbt")
    e2e = lat.column("e2e")
    _put(out, "ttft", percentiles(ttft), mean(ttft))
    _put(out, "tbt", lat.gap_percentiles(), mean(lat.gaps))
    _put(out, "req_mean_tbt", percentiles(req_mean_tbt), mean(req_mean_tbt))
    e2e_p50, e2e_p99 = percentiles(e2e, (50.0, 99.0))
    out.update(e2e_p50=e2e_p50, e2e_p99=e2e_p99, e2e_mean=mean(e2e))
    out["normalized_latency_mean"] = mean(lat.column("normalized_latency"))
    out["sched_delay_p50"] = median_scheduling_delay(lat)
    out["sched_delay_mean"] = mean(lat.column("scheduling_delay"))

    rate = throughput(lat)
    out.update(span_s=rate.span, throughput_rps=rate.requests_per_s, throughput_tps=rate.tokens_per_s)
    for name, mask in class_masks(lat).items():
        out.update(_class_summary(lat.where(mask), slo, name))
    return out


def _class_summary(lat: Latencies, slo: SLO, name: str) -> dict[str, float]:
    """The per-class keys of one SLO class's requests (see ``summarize``)."""
    out: dict[str, float] = {f"arrived[{name}]": len(lat.requests)}
    for definition, key in ATTAINMENT_KEYS.items():
        out[f"{key}[{name}]"] = ATTAINMENT_DEFINITIONS[definition](lat, slo)
    out[f"ttft_p99[{name}]"] = percentiles(lat.column("ttft"), (99.0,))[0]
    out[f"tbt_p99[{name}]"] = lat.gap_percentiles()[2]
    return out


def run_tables(requests: Iterable[Request], slo: SLO, num_trimmed: int = 0) -> tuple[pd.DataFrame, dict[str, float]]:
    """How every run ends, whatever executed it: the per-request records and their summary under ``slo``, with
    the number of requests the workload trimmed to fit the model."""
    records, times = records_and_times(requests)
    summary = summarize(latencies(records, times), slo)
    summary["num_trimmed"] = num_trimmed
    return records, summary


def _put(out: dict[str, float], prefix: str, p50_p90_p99: list[float], average: float) -> None:
    for q, value in zip(("p50", "p90", "p99"), p50_p90_p99, strict=True):
        out[f"{prefix}_{q}"] = value
    out[f"{prefix}_mean"] = average
