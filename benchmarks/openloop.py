"""Open-loop HTTP load: transactions sent at a constant arrival rate, each timed from its
scheduled send time, so time spent queued (in the client or the server) counts as latency.
A closed loop such as wrk's sends the next request only after an answer and so hides
queueing; here a slow answer never delays the next arrival.

Run as its own process (it never shares an event loop or a core's GIL with a server);
loopback only; bounded by the count of lines and by seconds.

python -m benchmarks.openloop --url http://127.0.0.1:8000 --traffic normal --start 135000
    --rate 1000 --seconds 10            -> one JSON line on stdout
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any
from urllib.parse import urlparse

import aiohttp
import numpy as np
import uvloop

from benchmarks.traffic import build

FLAGS = (b'"decision":"REVIEW"', b'"decision":"BLOCK"')


async def run(
    url: str, bodies: list[bytes], rate: float, connections: int, timeout_s: float, warm: int
) -> dict[str, Any]:
    """Send `bodies` at `rate`; the first `warm` (connections opening) are not counted."""
    if urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("load goes to loopback only")
    n = len(bodies)
    latency = np.full(n, np.nan)  # answer - scheduled send
    service = np.full(n, np.nan)  # answer - actual send
    statuses: dict[str, int] = {}
    flagged = degraded = 0
    lag = 0.0  # the most the client itself fell behind its schedule, seconds
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def send(http: aiohttp.ClientSession, i: int, due: float) -> None:
        nonlocal flagged, degraded
        sent = time.perf_counter()
        try:
            async with http.post("/v1/transactions", data=bodies[i], headers=headers) as r:
                body = await r.read()
                code = str(r.status)
            if r.status == 200 and i >= warm:
                flagged += sum(body.count(f) for f in FLAGS)
                degraded += body.count(b'"degraded":true')
        except (aiohttp.ClientError, TimeoutError) as e:
            code = type(e).__name__
        now = time.perf_counter()
        latency[i], service[i] = now - due, now - sent
        if i >= warm:
            statuses[code] = statuses.get(code, 0) + 1

    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as http:
        tasks = []
        t0 = time.perf_counter()
        for i in range(n):
            due = t0 + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                lag = max(lag, -wait)
            tasks.append(asyncio.create_task(send(http, i, due)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0 - warm / rate
    ok = statuses.get("200", 0)
    lat_ms = latency[warm:][~np.isnan(latency[warm:])] * 1000
    svc_ms = service[warm:][~np.isnan(service[warm:])] * 1000
    return {
        "mode": "open-loop",
        "offered_per_s": rate,
        "requests": n - warm,
        "warm_requests": warm,
        "ok": ok,
        "errors": n - warm - ok,
        "statuses": statuses,
        "seconds": wall,
        "achieved_per_s": ok / wall,
        "p50_ms": float(np.percentile(lat_ms, 50)),
        "p95_ms": float(np.percentile(lat_ms, 95)),
        "p99_ms": float(np.percentile(lat_ms, 99)),
        "p999_ms": float(np.percentile(lat_ms, 99.9)),
        "max_ms": float(lat_ms.max()),
        # From the actual send instead: the gap is the client's own timer and CPU delay.
        "sent_p50_ms": float(np.percentile(svc_ms, 50)),
        "sent_p99_ms": float(np.percentile(svc_ms, 99)),
        "client_lag_ms": lag * 1000,
        "flagged": flagged,
        "degraded": degraded,  # answered in time without some state (docs/api.md)
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.openloop")
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--traffic", default="normal", choices=["normal", "attack"])
    ap.add_argument("--start", type=int, default=0, help="first line of the traffic file")
    ap.add_argument("--rate", type=float, default=1000.0, help="transactions per second")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warm-seconds", type=float, default=1.0, help="sent first, not counted")
    ap.add_argument("--connections", type=int, default=256, help="most open at once")
    ap.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    a = ap.parse_args(argv)
    traffic = build(a.traffic)
    warm = int(a.rate * a.warm_seconds)
    count = min(warm + int(a.rate * a.seconds), traffic.count - a.start)
    bodies = traffic.lines(a.start, count)
    result = uvloop.run(run(a.url, bodies, a.rate, a.connections, a.timeout, warm))
    print(json.dumps(result | {"traffic": a.traffic, "start": a.start}))


if __name__ == "__main__":
    main()
