"""Where a single transaction's time goes at c=1: raw per-request latencies, stage by stage.

Side by side in one run: the seed-style baseline, then the service on the documented start
path (`serve run` in throughput mode behind HAProxy), each alone, warmed as `compare` warms
them, then sent `--requests` single transactions one after another (c=1) from a plain
keep-alive HTTP/1.1 client. Every latency is kept as measured (no coordinated-omission
correction: one stall is one slow request, not a tail). The service's requests ask for stage
timings (`x-fraud-timing`), so each answer says how long each stage of its path took inside
the replica (`deployments.scoring.stages`); what the client saw beyond the replica's total
is the network, HAProxy and Serve's own request handling before our first line.

python -m benchmarks stages [--requests 3000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import gc
import http.client
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from benchmarks.common import save
from benchmarks.compare import SERVICE_URL, Cursor, baseline_server, warm
from cli.demo import demo_config, start_service, stop_service, wait_healthy
from deployments.scoring.stages import STAGES

PERCENTILES = (50, 90, 99, 99.9)
SLOW_MS = 5.0  # a request above this is a stall worth attributing
STALLS = 8  # the slowest requests, each shown with when it was sent and where it waited


def _timings(header: str | None) -> dict[str, float]:
    if not header:
        return {}
    out = {}
    for part in header.split(","):
        name, _, ms = part.strip().partition(";dur=")
        out[name] = float(ms)
    return out


def sequential(
    url: str, cursor: Cursor, requests: int, seconds: float, timed: bool
) -> dict[str, Any]:
    """`requests` single transactions one after another (at most `seconds`), each latency
    and (when `timed`) its stage timings, as measured."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    traffic, start = cursor.traffic["normal"], cursor.next["normal"]
    lines = traffic.lines(start, requests)
    headers = {"content-type": "application/json"}
    if timed:
        headers["x-fraud-timing"] = "1"
    latencies, sent, stages, errors = [], [], [], 0
    gc.collect()  # this client's own collections would count as the server's latency
    gc.disable()
    began = time.perf_counter()
    deadline = time.monotonic() + seconds
    try:
        for line in lines:
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            sent.append(t0 - began)
            conn.request("POST", "/v1/transactions", body=line, headers=headers)
            answer = conn.getresponse()
            answer.read()
            latencies.append(time.perf_counter() - t0)
            errors += answer.status != 200
            stages.append(_timings(answer.getheader("server-timing")))
    finally:
        gc.enable()
        conn.close()
    cursor.take("normal", len(latencies))
    return {
        "latencies_ms": [1e3 * x for x in latencies],
        "sent_s": sent,
        "stages": stages,
        "errors": errors,
    }


def summary(run: dict[str, Any]) -> dict[str, Any]:
    lat = np.asarray(run["latencies_ms"])
    out: dict[str, Any] = {
        "requests": len(lat),
        "errors": run["errors"],
        **{f"p{p:g}_ms": float(np.percentile(lat, p)) for p in PERCENTILES},
        "max_ms": float(lat.max()),
        "mean_ms": float(lat.mean()),
        "slow": int((lat > SLOW_MS).sum()),
    }
    stages = [row for row in run["stages"] if row]
    if stages:
        seen = set().union(*stages)
        names = [s for s in (*STAGES, "total") if s in seen]
        table = np.array([[row.get(s, 0.0) for s in names] for row in stages])
        out["timed_requests"] = len(stages)
        out["stage_present"] = {s: sum(s in row for row in stages) for s in names}
        kept = [i for i, row in enumerate(run["stages"]) if row]  # requests with timings
        lat = lat[kept]
        outside = lat - table[:, names.index("total")]
        out["stage_p50_ms"] = {s: float(np.median(table[:, i])) for i, s in enumerate(names)}
        out["stage_mean_ms"] = {s: float(table[:, i].mean()) for i, s in enumerate(names)}
        out["outside_p50_ms"] = float(np.median(outside))
        out["outside_mean_ms"] = float(outside.mean())
        worst = np.argsort(lat)[::-1][:STALLS]
        out["stalls"] = [
            {
                "sent_s": round(run["sent_s"][kept[i]], 3),
                "ms": round(float(lat[i]), 2),
                "outside": round(float(outside[i]), 2),
                **run["stages"][kept[i]],
            }
            for i in worst.tolist()
        ]
        slow = lat > SLOW_MS
        if slow.any():  # where the stalls went: the mean of each stage over slow requests
            out["slow_stage_mean_ms"] = {
                **{s: float(table[slow, i].mean()) for i, s in enumerate(names)},
                "outside": float(outside[slow].mean()),
            }
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks stages")
    ap.add_argument("--requests", type=int, default=3_000)
    ap.add_argument("--seconds", type=float, default=60.0, help="at most this long per target")
    a = ap.parse_args(argv)
    console = Console()
    results: dict[str, Any] = {}
    with baseline_server() as (url, _):
        cursor = Cursor()
        warm(url, cursor, console)
        results["baseline"] = summary(sequential(url, cursor, a.requests, a.seconds, False))
    data = Path("data")
    proc = start_service(console, data / "logs" / "stages-serve.log", demo_config(data), fast=True)
    try:
        wait_healthy(proc)
        cursor = Cursor()
        warm(SERVICE_URL, cursor, console)
        results["ours"] = summary(sequential(SERVICE_URL, cursor, a.requests, a.seconds, True))
    finally:
        stop_service(proc, console)
    for name, r in results.items():
        console.print(
            f"{name:>9}: {r['requests']:,} requests, p50 {r['p50_ms']:.2f} ms, p90 "
            f"{r['p90_ms']:.2f}, p99 {r['p99_ms']:.2f}, p99.9 {r['p99.9_ms']:.2f}, max "
            f"{r['max_ms']:.1f} ms; {r['slow']} above {SLOW_MS:g} ms; errors {r['errors']}"
        )
    ours = results["ours"]
    if "stage_p50_ms" in ours:
        console.print("ours, stage by stage (p50 / mean ms; slow requests' mean):")
        slow = ours.get("slow_stage_mean_ms", {})
        rows = [*ours["stage_p50_ms"], "outside"]
        for s in rows:
            p50 = ours["stage_p50_ms"].get(s, ours["outside_p50_ms"])
            mean = ours["stage_mean_ms"].get(s, ours["outside_mean_ms"])
            console.print(f"  {s:<8} {p50:7.3f} / {mean:7.3f}   {slow.get(s, float('nan')):8.2f}")
        console.print("ours, the slowest requests (sent at s: ms, then each stage over 1 ms):")
        for stall in ours["stalls"]:
            parts = [f"{k} {v:.1f}" for k, v in stall.items() if k not in ("sent_s", "ms", "total")]
            big = [p for p in parts if float(p.rsplit(" ", 1)[1]) >= 1.0]
            console.print(f"  {stall['sent_s']:8.3f}: {stall['ms']:7.1f} ms  " + ", ".join(big))
    save("stages", {"requests": a.requests, "slow_ms": SLOW_MS, **results})


if __name__ == "__main__":
    main()
