"""First latency/throughput measurement of the live service (serve run serve_config.yaml).

Single transactions at concurrency 1 and 16, and batches of 1,000, from a client in this
process against the service in its own; bounded in count and time, loopback only.
Run: python -m benchmarks service [--seconds 10].
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from rich.console import Console

from benchmarks.common import save
from cli.demo import URL, demo_config, start_service, stop_service, wait_healthy

EPOCH = dt.datetime(2018, 6, 1)


def _tx(i: int, n_users: int = 5_000) -> dict[str, Any]:
    return {
        "transaction_id": f"bench-{i}",
        "user_id": f"bench-card-{i % n_users}",
        "terminal_id": f"bench-term-{(i * 7) % 2_000}",
        "amount": round(5 + (i * 37 % 20_000) / 100, 2),
        "timestamp": (EPOCH + dt.timedelta(seconds=i % (28 * 86_400))).isoformat(),
    }


async def _load(
    concurrency: int, batch: int, seconds: float, max_requests: int, start: int
) -> dict[str, Any]:
    """Closed loop: `concurrency` clients send back to back until time or count runs out."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(max_requests))
    deadline = time.perf_counter() + seconds
    headers = {"content-type": "application/json"}

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors
        for k in counter:
            if time.perf_counter() > deadline:
                return
            base = start + k * batch
            if batch == 1:
                path, body = "/v1/transactions", _tx(base)
            else:
                path, body = (
                    "/v1/transactions/batch",
                    {"transactions": [_tx(base + j) for j in range(batch)]},
                )
            t0 = time.perf_counter()
            r = await http.post(path, content=orjson.dumps(body), headers=headers)
            latencies.append(time.perf_counter() - t0)
            errors += r.status_code != 200

    async with httpx.AsyncClient(
        base_url=URL, timeout=60, limits=httpx.Limits(max_connections=concurrency)
    ) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat = np.array(latencies) * 1000
    return {
        "concurrency": concurrency,
        "batch": batch,
        "requests": len(lat),
        "errors": errors,
        "seconds": wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)),
        "requests_per_s": len(lat) / wall,
        "transactions_per_s": len(lat) * batch / wall,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=10.0, help="per scenario")
    args = ap.parse_args(argv)
    console = Console()
    Path("data").mkdir(exist_ok=True)
    proc = start_service(
        console, Path("data/logs/bench-serve.log"), demo_config(Path("data")), fast=False
    )  # Serve's defaults, as this benchmark's figures in BENCHMARKS.md were taken
    results = []
    try:
        wait_healthy(proc)
        asyncio.run(_load(4, 1, 3, 200, 10_000_000))  # warm-up
        for i, (c, b, cap) in enumerate(((1, 1, 5_000), (16, 1, 20_000), (4, 1_000, 200))):
            r = asyncio.run(_load(c, b, args.seconds, cap, i * 1_000_000))
            results.append(r)
            console.print(
                f"c={c:>2} batch={b:>5}: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                f"{r['transactions_per_s']:,.0f} tx/s, errors {r['errors']}"
            )
    finally:
        stop_service(proc, console)
    save("service", {"config": "serve_config.yaml (default Serve proxy)", "scenarios": results})


if __name__ == "__main__":
    main()
