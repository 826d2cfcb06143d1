"""Closed-loop HTTP load generator, run as its own process so it never shares an event loop
with a server. Loopback only; bounded by request count and seconds.

python -m benchmarks.loadgen --url http://127.0.0.1:8000 --concurrency 16 --batch 1
    --seconds 10 --max-requests 20000 --id-prefix run1   -> one JSON line on stdout
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import time
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
import orjson

EPOCH = dt.datetime(2018, 6, 1)


def make_tx(prefix: str, i: int, n_users: int = 20_000) -> dict[str, Any]:
    return {
        "transaction_id": f"{prefix}-{i}",
        "user_id": f"{prefix}-card-{(i * 7919) % n_users}",
        "terminal_id": f"{prefix}-term-{(i * 104_729) % 5_000}",
        "amount": round(5 + (i * 37 % 20_000) / 100, 2),
        "timestamp": (EPOCH + dt.timedelta(seconds=i * 3)).isoformat(),
    }


async def run(
    url: str, concurrency: int, batch: int, seconds: float, max_requests: int, prefix: str
) -> dict[str, Any]:
    if urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("load goes to loopback only")
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    counter = iter(range(max_requests))
    deadline = time.perf_counter() + seconds
    headers = {"content-type": "application/json"}

    async def client(http: httpx.AsyncClient) -> None:
        for k in counter:
            if time.perf_counter() > deadline:
                return
            if batch == 1:
                path, body = "/v1/transactions", make_tx(prefix, k)
            else:
                txs = [make_tx(prefix, k * batch + j) for j in range(batch)]
                path, body = "/v1/transactions/batch", {"transactions": txs}
            payload = orjson.dumps(body)
            t0 = time.perf_counter()
            try:
                r = await http.post(path, content=payload, headers=headers)
                code = str(r.status_code)
            except httpx.HTTPError as e:
                code = type(e).__name__
            latencies.append(time.perf_counter() - t0)
            statuses[code] = statuses.get(code, 0) + 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    ok = statuses.get("200", 0)
    return {
        "concurrency": concurrency,
        "batch": batch,
        "requests": len(latencies),
        "ok": ok,
        "errors": len(latencies) - ok,
        "statuses": statuses,
        "seconds": wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)),
        "requests_per_s": ok / wall,
        "transactions_per_s": ok * batch / wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--max-requests", type=int, default=100_000)
    ap.add_argument("--id-prefix", default="load")
    a = ap.parse_args()
    result = asyncio.run(run(a.url, a.concurrency, a.batch, a.seconds, a.max_requests, a.id_prefix))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
