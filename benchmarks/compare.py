"""Side by side in one run: the seed-style baseline server vs our Ray Serve service.

Each server runs alone while measured, on fresh state warmed with 14 days of the traffic
(benchmarks/traffic.py: simulator streams flagged at about the served thresholds' rate, and
a card-testing attack); the load generator is a separate process on loopback (wrk closed
loop, benchmarks/openloop.py for the open-loop row); every scenario is bounded in seconds
and lines. Reports p50/p95/p99, achieved transactions/s, the share flagged, errors and
server CPU-seconds per 1,000 transactions; checks the targets of the performance issue;
writes JSON, a Markdown table and a PNG chart under benchmarks/results/.

python -m benchmarks compare [--seconds 10] [--targets ours,ours-remote,ours-bare,ours-console]
                             [--stream N [--stream-rate R]] [--sweep R1,R2,...]
  --targets: after the baseline, from TARGETS below (ours = the documented start path).
  --stream N: also N transactions through the stream path as fast as it goes, and
              with --stream-rate at R tx/s offered; on Redis Streams and on Kafka
              (--stream-brokers redis,kafka), side by side.
  --sweep: also open loop at each rate, for the highest rate held with p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console

from benchmarks.common import RESULTS, cpu_of, save, tree
from benchmarks.traffic import Traffic, build
from cli.demo import demo_config, start_service, stop_service, wait_healthy
from deployments.serve_mode import fast_env


@dataclass(frozen=True)
class Scenario:
    """One row: closed-loop wrk at `concurrency` x `batch`, or open loop at `rate` tx/s."""

    name: str
    traffic: str = "normal"
    concurrency: int = 1
    batch: int = 1
    rate: float | None = None


SCENARIOS: list[Scenario] = [
    Scenario("single c=1"),
    Scenario("single c=16", concurrency=16),
    Scenario("single c=64", concurrency=64),
    Scenario("attack c=64", traffic="attack", concurrency=64),
    Scenario("batch 256", concurrency=4, batch=256),
    Scenario("batch 4096", concurrency=2, batch=4_096),
    Scenario("open 1,000/s", rate=1_000.0),
]
# Event-time days replayed into a fresh server before it is measured, so every card has the
# history the model expects (its windows reach 30 days; about 9,700 transactions a day).
WARM_DAYS = {"normal": 14, "attack": 7}
BASELINE_PORT = 8100
SERVICE_URL = "http://127.0.0.1:8000"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants (Ray's whole tree)."""
    try:
        return cpu_of(tree(pid))
    except psutil.NoSuchProcess:
        return 0.0


WRK_SCRIPT = Path(__file__).with_name("wrk_traffic.lua")


class Cursor:
    """Where the next scenario starts in each traffic file: no transaction is sent twice to
    one server, and each server gets the same lines in the same order."""

    def __init__(self) -> None:
        self.traffic = {name: build(name) for name in WARM_DAYS}
        self.next = {name: 0 for name in WARM_DAYS}

    def take(self, name: str, used: int) -> None:
        self.next[name] += used
        if self.next[name] > self.traffic[name].count:
            raise RuntimeError(f"traffic file {name!r} ran out: make it longer")


def load_wrk(
    url: str, scenario: Scenario, seconds: float, traffic: Traffic, start: int
) -> dict[str, Any]:
    """wrk (C, epoll) with a Lua script: the client costs far less CPU than Python's."""
    c, b = scenario.concurrency, scenario.batch
    out = subprocess.run(
        ["wrk", "-t", str(min(2, c)), "-c", str(c), "-d", f"{seconds:.0f}s", "--timeout",
         "30s", "-s", str(WRK_SCRIPT), url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        env={**os.environ, "FILE": str(traffic.path), "WIDTH": str(traffic.width),
             "START": str(start), "COUNT": str(traffic.count - start), "BATCH": str(b)},
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"wrk exited {out.returncode}: {out.stdout[-800:]} {out.stderr[-800:]}")
    r = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])
    ok = r["requests"] - r["non_2xx"] - r["socket_errors"]
    return {
        "concurrency": c,
        "batch": b,
        "requests": r["requests"],
        "ok": ok,
        "errors": r["requests"] - ok,
        "seconds": r["seconds"],
        "p50_ms": r["p50_ms"],
        "p95_ms": r["p95_ms"],
        "p99_ms": r["p99_ms"],
        "requests_per_s": ok / r["seconds"],
        "transactions_per_s": ok * b / r["seconds"],
        "flag_rate": r["flagged"] / max(r["decided"], 1),
        "degraded": r.get("degraded", 0),
        "lines_used": r["lines_used"],
        "client": "wrk",
    }


def load_open(
    url: str, scenario: Scenario, seconds: float, traffic: Traffic, start: int
) -> dict[str, Any]:
    """The open-loop client (benchmarks/openloop.py) in its own process."""
    assert scenario.rate is not None
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.openloop", "--url", url, "--traffic",
         scenario.traffic, "--start", str(start), "--rate", str(scenario.rate), "--seconds",
         str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=True,
    )  # fmt: skip
    r: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return r | {
        "concurrency": None,
        "batch": 1,
        "transactions_per_s": r["achieved_per_s"],
        "flag_rate": r["flagged"] / max(r["ok"], 1),
        "lines_used": r["requests"] + r["warm_requests"],
        "client": "open-loop",
    }


def warm(url: str, cursor: Cursor, console: Console) -> None:
    """Replay the first WARM_DAYS of each traffic file in batches (not measured), then a few
    seconds of single requests (connections, explainers, models in every replica)."""
    with httpx.Client(base_url=url, timeout=120) as http:
        for name, days in WARM_DAYS.items():
            traffic = cursor.traffic[name]
            end = traffic.first_of_day(days)
            for first in range(0, end, 4_096):
                lines = traffic.lines(first, min(4_096, end - first))
                body = b'{"transactions":[' + b",".join(lines) + b"]}"
                answer = http.post("/v1/transactions/batch", content=body,
                                   headers={"content-type": "application/json"})  # fmt: skip
                answer.raise_for_status()
            cursor.take(name, end)
            console.print(f"  warm: {end:,} {name} transactions ({days} days)")
    short = Scenario("warm", concurrency=4)
    r = load_wrk(url, short, 4, cursor.traffic["normal"], cursor.next["normal"])
    cursor.take("normal", r["lines_used"])


def measure(
    name: str,
    url: str,
    pid: int,
    seconds: float,
    console: Console,
    scenarios: list[Scenario] = SCENARIOS,
) -> list[dict[str, Any]]:
    # Steady state is what is compared: the first seconds after a start also load models,
    # explainers and connections (docs/operations.md, "After a start").
    cursor = Cursor()
    warm(url, cursor, console)
    rows = []
    for sc in scenarios:
        traffic, start = cursor.traffic[sc.traffic], cursor.next[sc.traffic]
        cpu0 = cpu_seconds(pid)
        run = load_open if sc.rate else load_wrk
        r = run(url, sc, seconds, traffic, start)
        cpu = cpu_seconds(pid) - cpu0
        cursor.take(sc.traffic, r["lines_used"])
        ok_tx = r["ok"] * sc.batch
        r |= {
            "target": name,
            "scenario": sc.name,
            "traffic": sc.traffic,
            "first_line": start,
            "server_cpu_s_per_1000_tx": cpu / ok_tx * 1000 if ok_tx else None,
        }
        rows.append(r)
        console.print(
            f"{name:>9} {sc.name:<13} p50 {r['p50_ms']:8.2f} ms  p99 {r['p99_ms']:8.2f} ms  "
            f"{r['transactions_per_s']:>10,.0f} tx/s  flagged {r['flag_rate']:6.2%}  "
            f"errors {r['errors']}  degraded {r.get('degraded', 0)}"
        )
    return rows


@contextlib.contextmanager
def baseline_server() -> Iterator[tuple[str, int]]:
    """The seed-style baseline (benchmarks/baseline_server.py) running: (url, pid)."""
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
        yield url, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def run_baseline(
    seconds: float, console: Console, scenarios: list[Scenario] = SCENARIOS
) -> list[dict[str, Any]]:
    with baseline_server() as (url, pid):
        return measure("baseline", url, pid, seconds, console, scenarios)


def run_service(
    seconds: float,
    fast: bool,
    console: Console,
    name: str,
    args: dict[str, Any] | None = None,
    scenarios: list[Scenario] = SCENARIOS,
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
        with watching(SERVICE_URL, WATCHERS.get(name, 0)) as frames:
            rows = measure(name, SERVICE_URL, proc.pid, seconds, console, scenarios)
        if frames:
            console.print(f"{name}: the live view received {sum(frames)} WebSocket frames")
            for r in rows:
                r["console_frames"] = sum(frames)
        return rows
    finally:
        stop_service(proc, console)


def markdown(rows: list[dict[str, Any]], targets: list[str]) -> str:
    base = {r["scenario"]: r for r in rows if r["target"] == "baseline"}
    lines = [
        "| scenario | target | p50 ms | p95 ms | p99 ms | tx/s | flagged | errors "
        "| CPU s / 1k tx | tx/s vs baseline |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for sc in SCENARIOS:
        for t in targets:
            r = next((x for x in rows if x["target"] == t and x["scenario"] == sc.name), None)
            if r is None or r["server_cpu_s_per_1000_tx"] is None:
                continue
            b = base.get(sc.name)
            ratio = (
                f"{r['transactions_per_s'] / b['transactions_per_s']:.2f}x"
                if b and b["transactions_per_s"] and t != "baseline"
                else "-"
            )
            lines.append(
                f"| {sc.name} | {t} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
                f"{r['p99_ms']:.2f} | {r['transactions_per_s']:,.0f} | {r['flag_rate']:.1%} | "
                f"{r['errors']} | {r['server_cpu_s_per_1000_tx']:.3f} | {ratio} |"
            )
    return "\n".join(lines) + "\n"


def chart(rows: list[dict[str, Any]], targets: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [s.name for s in SCENARIOS]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.4))
    width = 0.8 / len(targets)

    def value(t: str, s: str, key: str) -> float:
        return next((r[key] for r in rows if r["target"] == t and r["scenario"] == s), 0.0)

    for k, t in enumerate(targets):
        x = np.arange(len(labels)) + k * width
        a1.bar(x, [value(t, s, "transactions_per_s") for s in labels], width, label=t)
        a2.bar(x, [value(t, s, "p99_ms") for s in labels], width, label=t)
    for ax, title in ((a1, "transactions/s (log)"), (a2, "p99 latency ms (log)")):
        ax.set_xticks(np.arange(len(labels)) + width * (len(targets) - 1) / 2, labels, rotation=20)
        ax.set_yscale("log")
        ax.set_title(title)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("baseline (one uvicorn process) vs the Ray Serve service, same run, 2 cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# name -> (throughput-optimized mode, app arguments on top of serve_config.yaml)
TARGETS: dict[str, tuple[bool, dict[str, Any]]] = {
    "ours": (True, {}),  # the documented start path (make serve, make demo, fraud demo)
    "ours-remote": (True, {"score_in_process": False}),  # every batch to ModelScorer
    "ours-bare": (False, {}),  # `serve run serve_config.yaml` without the environment
    "ours-approx": (True, {"reasons": "approx"}),
    "ours-rayhops": (True, {"shard_transport": "ray"}),
    # What each piece of durability costs, beside the default in one run:
    "ours-noarchive": (True, {"dedup": {"retain_days": 0}}),  # retries recognised in memory only
    "ours-norecord": (True, {"decision_record": {"path": None}}),  # no decision record
    # The documented start path with an analyst's console open on the live view: its
    # WebSocket (/v1/live/ws) connected and read for the whole measurement.
    "ours-console": (True, {}),
}
WATCHERS = {"ours-console": 1}  # live-view WebSocket readers connected while measured


@contextlib.contextmanager
def watching(url: str, readers: int) -> Iterator[list[int]]:
    """`readers` live-view WebSockets connected and read as the console does (the first
    message a token: none, the benchmark's service has no keys); yields the frames each has
    received so far. Each stops within a second of the block's end."""
    import threading

    from websockets.sync.client import connect

    frames, stop = [0] * readers, threading.Event()

    def read(i: int) -> None:
        with connect(url.replace("http://", "ws://") + "/v1/live/ws") as ws:
            ws.send(json.dumps({"token": None}))
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    ws.recv(timeout=1.0)
                    frames[i] += 1

    threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(readers)]
    for t in threads:
        t.start()
    try:
        yield frames
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)


SWEEP = "sweep "  # the open-loop rate sweep's scenario names: "sweep 2,000/s"
SWEEP_P99_MS = 50.0


def sweep(rates: list[float]) -> list[Scenario]:
    return [Scenario(f"{SWEEP}{r:,.0f}/s", rate=r) for r in sorted(rates)]


def highest_rate(rows: list[dict[str, Any]], target: str) -> float:
    """The highest swept rate at which `target` answered within `SWEEP_P99_MS` at p99 with no
    error (0 when none did)."""
    held = [
        r["offered_per_s"] for r in rows
        if r["target"] == target and r["scenario"].startswith(SWEEP)
        and r["p99_ms"] <= SWEEP_P99_MS and not r["errors"]
    ]  # fmt: skip
    return float(max(held, default=0.0))


def verdicts(rows: list[dict[str, Any]], stream: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets for `ours`, each with its measured value and whether it holds."""

    def row(target: str, scenario: str) -> dict[str, Any] | None:
        return next((r for r in rows if r["target"] == target and r["scenario"] == scenario), None)

    def ratio(scenario: str) -> float | None:
        a, b = row("ours", scenario), row("baseline", scenario)
        if a is None or b is None:
            return None
        return float(a["transactions_per_s"] / b["transactions_per_s"])

    out: list[dict[str, Any]] = []

    def check(what: str, value: float | None, limit: float, at_most: bool, unit: str) -> None:
        if value is None:
            return
        ok = value <= limit if at_most else value >= limit
        out.append({"target": what, "value": value, "limit": limit, "at_most": at_most,
                    "unit": unit, "met": ok})  # fmt: skip

    one = row("ours", "single c=1")
    check("single, c=1, p50", None if one is None else one["p50_ms"], 1.0, True, "ms")
    check("single, c=1, p99", None if one is None else one["p99_ms"], 5.0, True, "ms")
    check("single, c=64, tx/s vs baseline", ratio("single c=64"), 1.2, False, "x")
    c64 = row("ours", "single c=64")
    check("single, c=64, p99", None if c64 is None else c64["p99_ms"], 50.0, True, "ms")
    b64 = row("baseline", "single c=64")
    if c64 and b64:
        cpu = c64["server_cpu_s_per_1000_tx"] / b64["server_cpu_s_per_1000_tx"]
        check("server CPU-s per 1,000 single tx at c=64 vs baseline", cpu, 1.4, True, "x")
    opened, base_open = row("ours", "open 1,000/s"), row("baseline", "open 1,000/s")
    p99 = None if opened is None else opened["p99_ms"]
    check("open loop, 1,000 single tx/s offered, p99", p99, 20.0, True, "ms")
    if opened and base_open:
        check("open loop, 1,000 tx/s, p99 vs the baseline's", opened["p99_ms"] /
              base_open["p99_ms"], 1.0, True, "x")  # fmt: skip
    check("batch 4,096, tx/s vs baseline", ratio("batch 4096"), 1.5, False, "x")
    swept = {r["target"] for r in rows if r["scenario"].startswith(SWEEP)}
    if {"ours", "baseline"} <= swept:
        best = {t: highest_rate(rows, t) for t in ("ours", "baseline")}
        check(f"highest open-loop rate with p99 <= {SWEEP_P99_MS:g} ms", best["ours"],
              best["baseline"], False, "tx/s")  # fmt: skip
    remote = row("ours-remote", "single c=64")
    if c64 and remote:
        cost = remote["server_cpu_s_per_1000_tx"] / c64["server_cpu_s_per_1000_tx"]
        check("score_in_process: false, CPU per tx at c=64 vs default", cost, 1.3, True, "x")
    for st in stream:
        if st["rate"]:
            check(f"stream ({st['broker']}), {st['rate']:,.0f} tx/s offered, end-to-end p99",
                  st["p99_ms"], 250.0, True, "ms")  # fmt: skip
        else:
            check(f"stream ({st['broker']}), saturation", st["tx_per_s"], 75_000.0, False, "tx/s")
    return out


def verdict_table(checks: list[dict[str, Any]]) -> str:
    lines = ["| target | measured | limit | met |", "|---|---|---|---|"]
    for c in checks:
        sign = "<=" if c["at_most"] else ">="
        lines.append(
            f"| {c['target']} | {c['value']:,.2f} {c['unit']} | {sign} {c['limit']:,.2f} "
            f"{c['unit']} | {'yes' if c['met'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def stream_table(stream: list[dict[str, Any]]) -> str:
    lines = [
        "| stream path (labels, 100 tx per entry) | broker | offered tx/s | achieved tx/s "
        "| p50 ms | p99 ms | errors | service CPU s / 1k tx | broker CPU s / 1k tx |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for st in stream:
        offered = f"{st['rate']:,.0f}" if st["rate"] else "as fast as it can"
        lines.append(
            f"| {st['transactions']:,} transactions | {st['broker']} | {offered} | "
            f"{st['tx_per_s']:,.0f} | {st['p50_ms']:.0f} | {st['p99_ms']:.0f} | "
            f"{sum(st['errors'].values())} | {st['service_cpu_s_per_1k']:.3f} | "
            f"{st['broker_cpu_s_per_1k']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=10.0, help="per scenario")
    ap.add_argument(
        "--targets",
        default="ours,ours-remote,ours-bare",
        help=f"comma-separated, measured after the baseline; of {', '.join(TARGETS)}",
    )
    ap.add_argument(
        "--stream",
        type=int,
        default=0,
        metavar="N",
        help="also push N transactions through the Redis Streams path as fast as it goes "
        "(python -m benchmarks stream); the baseline has no stream path",
    )
    ap.add_argument(
        "--stream-rate",
        type=float,
        default=None,
        metavar="R",
        help="and the same N at R transactions/s offered",
    )
    ap.add_argument(
        "--stream-brokers",
        default="redis,kafka",
        metavar="B1,B2",
        help="the stream paths to measure, one after the other: redis (the machine's Redis "
        "on 6379), kafka (a broker of the benchmark's own)",
    )
    ap.add_argument(
        "--sweep",
        default="",
        metavar="R1,R2,...",
        help="also open-loop single transactions at each of these rates (tx/s) to find the "
        f"highest one each target answers with p99 <= {SWEEP_P99_MS:g} ms",
    )
    args = ap.parse_args(argv)
    scenarios = SCENARIOS + sweep([float(r) for r in args.sweep.split(",") if r])
    names = [t for t in args.targets.split(",") if t]
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        ap.error(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
    console = Console()
    rows = run_baseline(args.seconds, console, scenarios)
    for name in names:
        fast, app_args = TARGETS[name]
        rows += run_service(args.seconds, fast, console, name, app_args, scenarios)
    targets = ["baseline", *names]
    table = markdown(rows, targets)
    stream: list[dict[str, Any]] = []
    if args.stream:
        from benchmarks.stream import run as run_stream

        for broker in args.stream_brokers.split(","):
            for rate in ([args.stream_rate] if args.stream_rate else []) + [None]:
                stream.append(
                    run_stream(console, args.stream, 4, 40, 100, True, rate, True, None, broker)
                )
        table += "\n" + stream_table(stream)
    checks = verdicts(rows, stream)
    table += "\n" + verdict_table(checks)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "compare.md").write_text(table)
    chart(rows, targets, RESULTS / "compare.png")
    console.print(table)
    save(
        "compare",
        {
            "seconds_per_scenario": args.seconds,
            "haproxy": shutil.which("haproxy"),
            "fast_env": fast_env(),
            "traffic": {n: dataclasses.asdict(build(n)) for n in WARM_DAYS},
            "rows": rows,
            "stream": stream,
            "targets": checks,
        },
    )


if __name__ == "__main__":
    main()
