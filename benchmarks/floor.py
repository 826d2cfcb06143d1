"""The floor under the service's HTTP figures: an app that does nothing (benchmarks/floor_app.py)
served by one uvicorn process and by Ray Serve on the documented start path (throughput mode,
HAProxy), side by side with wrk at c=1 and c=64. Whatever Serve costs here, every Serve app
pays before its own work starts.

Run: python -m benchmarks floor [--seconds 8]   -> benchmarks/results/floor.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console

from benchmarks.common import save
from benchmarks.compare import Scenario, cpu_seconds, load_wrk
from benchmarks.traffic import build
from cli.demo import stop_service
from deployments.serve_mode import fast_env

PORT = 8200
URL = f"http://127.0.0.1:{PORT}"
SCENARIOS = [Scenario("c=1"), Scenario("c=64", concurrency=64)]


def wait_up(proc: subprocess.Popen[bytes], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            httpx.post(f"{URL}/v1/transactions", content=b"{}", timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(1)
    raise TimeoutError("server did not answer")


def measure(
    name: str, proc: subprocess.Popen[bytes], seconds: float, console: Console
) -> list[dict[str, Any]]:
    traffic = build("normal")
    wait_up(proc)
    start = 0
    load_wrk(URL, Scenario("warm", concurrency=4), 3, traffic, start)
    rows = []
    for sc in SCENARIOS:
        start += 200_000
        cpu0 = cpu_seconds(proc.pid)
        r = load_wrk(URL, sc, seconds, traffic, start)
        cpu = cpu_seconds(proc.pid) - cpu0
        r |= {
            "target": name,
            "scenario": sc.name,
            "cpu_us_per_request": 1e6 * cpu / max(r["ok"], 1),
        }
        rows.append(r)
        console.print(
            f"{name:>12} {sc.name:<5} p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
            f"{r['requests_per_s']:8,.0f} req/s  CPU {r['cpu_us_per_request']:6,.0f} us/request"
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks floor")
    ap.add_argument("--seconds", type=float, default=8.0)
    a = ap.parse_args(argv)
    console = Console()
    logs = Path("data") / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    uvicorn = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "benchmarks.floor_app:api", "--port", str(PORT),
         "--log-level", "warning", "--no-access-log"],
        start_new_session=True,
    )  # fmt: skip
    try:
        rows += measure("uvicorn", uvicorn, a.seconds, console)
    finally:
        stop_service(uvicorn, console)
    config = Path("data") / "floor-serve-config.yaml"
    config.write_text(yaml.safe_dump({
        "proxy_location": "HeadOnly",
        "http_options": {"host": "127.0.0.1", "port": PORT},
        "logging_config": {"enable_access_log": False, "log_level": "WARNING"},
        "applications": [{"name": "floor", "route_prefix": "/",
                          "import_path": "benchmarks.floor_app:app"}],
    }))  # fmt: skip
    serve_bin = Path(sys.executable).with_name("serve")
    with open(logs / "floor-serve.log", "wb") as log:
        serve = subprocess.Popen(
            [str(serve_bin), "run", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RAY_SERVE_LOG_TO_STDERR": "0", **fast_env()},
            start_new_session=True,
        )
        try:
            rows += measure("serve (fast)", serve, a.seconds, console)
        finally:
            stop_service(serve, console)
    save("floor", {"seconds": a.seconds, "fast_env": fast_env(), "rows": rows})


if __name__ == "__main__":
    main()
