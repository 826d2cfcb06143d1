"""Side by side in one run: the seed-style baseline server vs our Ray Serve service.

Each server runs alone while measured; the load generator is a separate process on
loopback; every scenario is bounded in seconds and requests. Reports p50/p95/p99, achieved
transactions/s, errors and server CPU-seconds per 1,000 transactions; writes JSON, a
Markdown table and a PNG chart under benchmarks/results/, and prints ours/baseline ratios.

python -m benchmarks compare [--seconds 10] [--fast] [--approx-reasons] [--ray-hops] [--stream N]
  --fast: start Serve with RAY_SERVE_THROUGHPUT_OPTIMIZED=1 (and the HAProxy ingress when
          /usr/sbin/haproxy exists), which serve_config.yaml cannot set for the proxy.
  --approx-reasons: also the fast mode with `reasons: approx` (the baseline explains nothing;
          exact TreeSHAP for flagged rows is the service's largest per-batch cost).
  --ray-hops: also the fast mode with `shard_transport: ray` (Ray actor calls to shards).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console

from benchmarks.common import RESULTS, cpu_of, save
from cli.demo import demo_config, start_service, stop_service, wait_healthy
from deployments.serve_mode import fast_env

SCENARIOS: list[tuple[str, int, int, int]] = [  # name, concurrency, batch, max requests
    ("single c=1", 1, 1, 20_000),
    ("single c=16", 16, 1, 50_000),
    ("single c=64", 64, 1, 50_000),
    ("batch 256", 4, 256, 2_000),
    ("batch 4096", 2, 4_096, 200),
]
BASELINE_PORT = 8100
SERVICE_URL = "http://127.0.0.1:8000"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants (Ray's whole tree)."""
    try:
        root = psutil.Process(pid)
        return cpu_of([root, *root.children(recursive=True)])
    except psutil.NoSuchProcess:
        return 0.0


WRK_SCRIPT = Path(__file__).with_name("wrk_post.lua")


def load_wrk(url: str, concurrency: int, batch: int, seconds: float, prefix: str) -> dict[str, Any]:
    """wrk (C, epoll) with a Lua script: the client costs far less CPU than Python's."""
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(min(2, concurrency)),
            "-c",
            str(concurrency),
            "-d",
            f"{seconds:.0f}s",
            "--timeout",
            "30s",
            "-s",
            str(WRK_SCRIPT),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
        env={**os.environ, "PREFIX": prefix, "BATCH": str(batch)},
    )
    r = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])
    ok = r["requests"] - r["non_2xx"] - r["socket_errors"]
    return {
        "concurrency": concurrency,
        "batch": batch,
        "requests": r["requests"],
        "ok": ok,
        "errors": r["requests"] - ok,
        "seconds": r["seconds"],
        "p50_ms": r["p50_ms"],
        "p95_ms": r["p95_ms"],
        "p99_ms": r["p99_ms"],
        "requests_per_s": ok / r["seconds"],
        "transactions_per_s": ok * batch / r["seconds"],
        "client": "wrk",
    }


def load(
    url: str, concurrency: int, batch: int, seconds: float, cap: int, prefix: str
) -> dict[str, Any]:
    """wrk where installed (Debian package `wrk`), else the Python async client."""
    if shutil.which("wrk"):
        return load_wrk(url, concurrency, batch, seconds, prefix)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.loadgen",
            "--url",
            url,
            "--concurrency",
            str(concurrency),
            "--batch",
            str(batch),
            "--seconds",
            str(seconds),
            "--max-requests",
            str(cap),
            "--id-prefix",
            prefix,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure(
    name: str, url: str, pid: int, seconds: float, console: Console
) -> list[dict[str, Any]]:
    # Steady state is what is compared: the first seconds after a start also load models,
    # explainers and connections (docs/operations.md, "After a start").
    load(url, 4, 1, 4, 1000, f"{name}-warm")
    rows = []
    for label, c, b, cap in SCENARIOS:
        cpu0 = cpu_seconds(pid)
        r = load(url, c, b, seconds, cap, f"{name}-{c}-{b}")
        cpu = cpu_seconds(pid) - cpu0
        ok_tx = r["ok"] * b
        r |= {
            "target": name,
            "scenario": label,
            "server_cpu_s_per_1000_tx": cpu / ok_tx * 1000 if ok_tx else None,
        }
        rows.append(r)
        console.print(
            f"{name:>9} {label:<12} p50 {r['p50_ms']:8.2f} ms  p99 {r['p99_ms']:8.2f} ms  "
            f"{r['transactions_per_s']:>10,.0f} tx/s  errors {r['errors']}"
        )
    return rows


def run_baseline(seconds: float, console: Console) -> list[dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.baseline_server", "--port", str(BASELINE_PORT)],
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{BASELINE_PORT}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "baseline did not start"
            time.sleep(0.3)
        return measure("baseline", url, proc.pid, seconds, console)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def run_service(
    seconds: float, fast: bool, console: Console, name: str, args: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    data = Path("data")
    data.mkdir(exist_ok=True)
    proc = start_service(
        console,
        data / "logs" / "compare-serve.log",
        demo_config(data, args),
        fast=fast,
    )
    try:
        wait_healthy(proc)
        return measure(name, SERVICE_URL, proc.pid, seconds, console)
    finally:
        stop_service(proc, console)


def markdown(rows: list[dict[str, Any]], targets: list[str]) -> str:
    base = {r["scenario"]: r for r in rows if r["target"] == "baseline"}
    lines = [
        "| scenario | target | p50 ms | p95 ms | p99 ms | tx/s | errors | CPU s / 1k tx "
        "| tx/s vs baseline |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, *_ in SCENARIOS:
        for t in targets:
            r = next((x for x in rows if x["target"] == t and x["scenario"] == label), None)
            if r is None:
                continue
            b = base.get(label)
            ratio = (
                r["transactions_per_s"] / b["transactions_per_s"]
                if b and b["transactions_per_s"]
                else None
            )
            cpu = r["server_cpu_s_per_1000_tx"]
            lines.append(
                f"| {label} | {t} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['p99_ms']:.2f} | "
                f"{r['transactions_per_s']:,.0f} | {r['errors']} | {cpu:.3f} | "
                + (f"{ratio:.2f}x |" if ratio is not None and t != "baseline" else "- |")
                if cpu is not None
                else ""
            )
    return "\n".join(lines) + "\n"


def chart(rows: list[dict[str, Any]], targets: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [s[0] for s in SCENARIOS]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2))
    width = 0.8 / len(targets)
    for k, t in enumerate(targets):
        tps = [
            next(
                (r["transactions_per_s"] for r in rows if r["target"] == t and r["scenario"] == s),
                0,
            )
            for s in labels
        ]
        p50 = [
            next((r["p50_ms"] for r in rows if r["target"] == t and r["scenario"] == s), 0)
            for s in labels
        ]
        x = np.arange(len(labels)) + k * width
        a1.bar(x, tps, width, label=t)
        a2.bar(x, p50, width, label=t)
    for ax, title in ((a1, "transactions/s (log)"), (a2, "p50 latency ms (log)")):
        ax.set_xticks(np.arange(len(labels)) + width * (len(targets) - 1) / 2, labels, rotation=20)
        ax.set_yscale("log")
        ax.set_title(title)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("baseline (one uvicorn process) vs the Ray Serve service, same run, 2 cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=10.0, help="per scenario")
    ap.add_argument(
        "--fast", action="store_true", help="also measure the throughput-optimized mode"
    )
    ap.add_argument(
        "--approx-reasons",
        action="store_true",
        help="also the fast mode with `reasons: approx` instead of exact TreeSHAP",
    )
    ap.add_argument(
        "--ray-hops",
        action="store_true",
        help="also the fast mode with `shard_transport: ray` (shard calls as Ray actor calls "
        "instead of each shard's socket)",
    )
    ap.add_argument(
        "--stream",
        type=int,
        default=0,
        metavar="N",
        help="also push N transactions through the Redis Streams path (python -m benchmarks "
        "stream); the baseline has no stream path",
    )
    args = ap.parse_args(argv)
    console = Console()
    rows = run_baseline(args.seconds, console)
    rows += run_service(args.seconds, False, console, "ours")
    targets = ["baseline", "ours"]
    if args.fast:
        rows += run_service(args.seconds, True, console, "ours-fast")
        targets.append("ours-fast")
    if args.approx_reasons:
        rows += run_service(args.seconds, True, console, "ours-fast-approx", {"reasons": "approx"})
        targets.append("ours-fast-approx")
    if args.ray_hops:
        rows += run_service(
            args.seconds, True, console, "ours-fast-rayhops", {"shard_transport": "ray"}
        )
        targets.append("ours-fast-rayhops")
    table = markdown(rows, targets)
    if args.stream:
        from benchmarks.stream import run as run_stream

        st = run_stream(console, args.stream, 4, 40, 100, True)
        rows.append({"target": "ours-stream", "scenario": f"stream {args.stream:,}", **st})
        table += (
            f"| stream {args.stream:,} (Redis Streams, labels, 100 tx per entry) | ours | "
            f"{st['p50_ms']:.0f} | {st['p95_ms']:.0f} | {st['p99_ms']:.0f} | "
            f"{st['tx_per_s']:,.0f} | {sum(st['errors'].values())} | "
            f"{st['service_cpu_s_per_1k']:.3f} | - |\n"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "compare.md").write_text(table)
    chart(rows, targets, RESULTS / "compare.png")
    console.print(table)
    save(
        "compare",
        {
            "seconds_per_scenario": args.seconds,
            "haproxy": shutil.which("haproxy"),
            "fast_env": fast_env() if args.fast else None,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
