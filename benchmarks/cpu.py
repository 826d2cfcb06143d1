"""Where the CPU goes: the service on its documented start path under single-transaction
load (wrk, c=64, realistic traffic), CPU per transaction for every process of its tree
(HAProxy, Serve's proxy, replicas, shard actors, Ray's own daemons) and with no traffic at
all, and per thread for the busiest; then, in a second pass (py-spy costs CPU itself, so
it is not the measured one), a py-spy profile of the busiest Python processes grouped by
what the code is doing (`--gil`: only samples of the thread holding the GIL).

Run: python -m benchmarks cpu [--seconds 15] [--concurrency 64]
Writes benchmarks/results/cpu.json and prints the breakdown.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console

from benchmarks.common import add_app_args, app_args, cpu_by_pid, save, tree
from benchmarks.compare import SERVICE_URL, Cursor, Scenario, load_wrk, warm
from cli.demo import demo_config, start_service, stop_service, wait_healthy

IDLE_S = 10.0
# What a sampled stack is doing, by the first rule (in order) that one of its frames meets:
# (label, regular expression on "function (file)").
ACTIVITIES: list[tuple[str, str]] = [
    ("reasons (TreeSHAP)", r"shap|explain|reasons"),
    ("model (ONNX Runtime)", r"onnx|OnnxModel|\.score \(models"),
    ("feature engine", r"features/(engine|state|kernels|windows)"),
    ("dedup archive", r"[Aa]rchive"),
    ("state store (journal, checkpoints)", r"actors/store/"),
    ("shard actor work", r"actors/actor/"),
    ("shard transport", r"actors/(wire|transport|client|socket)|deployments/.*shard"),
    ("request validation (pydantic)", r"pydantic|schemas\.py"),
    ("JSON", r"orjson|json/|encoders\.py|jsonable"),
    ("ingress and decision code", r"deployments/|policy/"),
    ("FastAPI / Starlette routing", r"fastapi|starlette"),
    ("Serve request path", r"ray/serve/"),
    ("Ray core (gRPC, core worker)", r"ray/_private|ray/_raylet|grpc|core_worker"),
    ("asyncio / uvloop", r"asyncio|uvloop|selectors"),
]


def role(p: psutil.Process) -> str:
    """A process's part in the tree, from its title (Ray sets `ray::<Actor>`)."""
    try:
        cmd = " ".join(p.cmdline()) or p.name()
    except psutil.Error:
        return "gone"
    if "haproxy" in cmd:
        return "haproxy"
    m = re.search(r"ray::([A-Za-z_:]+[A-Za-z_])", cmd)
    if m:
        return m.group(1).split(".")[0]
    for daemon in ("gcs_server", "raylet", "dashboard", "log_monitor", "monitor.py", "serve run"):
        if daemon in cmd:
            return daemon
    return Path(p.name()).name


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds of each thread of a process, with the name the OS has for it (Ray's C++
    threads are named; Python's threads carry the process's title)."""
    out: dict[int, tuple[str, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)
        except (OSError, ValueError, IndexError):
            continue
    return out


def threads_used(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds by thread name between two `thread_cpu` readings, most first."""
    used: dict[str, float] = defaultdict(float)
    for tid, (name, cpu) in after.items():
        used[name] += cpu - before.get(tid, (name, 0.0))[1]
    return dict(sorted(used.items(), key=lambda kv: -kv[1]))


def activity(stack: str) -> str:
    for label, pattern in ACTIVITIES:
        if re.search(pattern, stack):
            return label
    return "other"


def profile(
    pids: list[int], seconds: float, directory: Path, gil: bool = False
) -> dict[int, Counter[str]]:
    """py-spy record (raw, non-blocking) on each pid at once; samples grouped by activity.
    `gil`: only samples of the thread holding the interpreter lock (Python at work; a
    thread blocked in a socket read is otherwise hard to tell from one working)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    procs = {
        pid: subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "50",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(directory / f"{pid}.txt"),
                *(["--gil"] if gil else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    }
    out: dict[int, Counter[str]] = {}
    for pid, proc in procs.items():
        proc.wait(timeout=seconds + 60)
        path = directory / f"{pid}.txt"
        counts: Counter[str] = Counter()
        if path.exists():
            for line in path.read_text().splitlines():
                stack, _, n = line.rpartition(" ")
                # Innermost frame last; the innermost frame that meets a rule names it.
                frames = stack.split(";")
                label = next(
                    (a for f in reversed(frames) if (a := activity(f)) != "other"), "other"
                )
                counts[label] += int(n)
        out[pid] = counts
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks cpu")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--top", type=int, default=6, help="profile this many busiest processes")
    ap.add_argument("--gil", action="store_true", help="py-spy: only samples holding the GIL")
    add_app_args(ap)
    a = ap.parse_args(argv)
    console = Console()
    data = Path("data")
    settings = app_args(a)
    config = demo_config(data, settings)
    proc = start_service(console, data / "logs" / "cpu-serve.log", config, fast=True)
    try:
        wait_healthy(proc)
        cursor = Cursor()
        warm(SERVICE_URL, cursor, console)
        # What the tree costs with no traffic at all (Ray's and Serve's background work).
        procs = tree(proc.pid)
        before = cpu_by_pid(procs)
        time.sleep(IDLE_S)
        after = cpu_by_pid(procs)
        idle_cores = sum(after[p] - before.get(p, 0.0) for p in after) / IDLE_S
        idle: dict[str, float] = defaultdict(float)
        for p in procs:
            if p.pid in after:
                idle[role(p)] += (after[p.pid] - before.get(p.pid, 0.0)) / IDLE_S
        # The measured pass: CPU per process with nothing else running. py-spy costs CPU
        # itself, so the profiled pass after it only says how each process splits its time.
        sc = Scenario("single", concurrency=a.concurrency)
        procs = tree(proc.pid)
        before = cpu_by_pid(procs)
        threads_before = {p.pid: thread_cpu(p.pid) for p in procs}
        r = load_wrk(SERVICE_URL, sc, a.seconds, cursor.traffic["normal"], cursor.next["normal"])
        cursor.take("normal", r["lines_used"])
        after = cpu_by_pid(procs)
        threads_after = {p.pid: thread_cpu(p.pid) for p in procs}
        roles = {p.pid: role(p) for p in procs}
        busy = sorted(after, key=lambda pid: after[pid] - before.get(pid, 0.0), reverse=True)
        python = [pid for pid in busy if roles[pid] != "haproxy"][: a.top]
        stacks = data / "profiles"  # py-spy's raw stacks, one file per pid, for a closer look
        shutil.rmtree(stacks, ignore_errors=True)
        stacks.mkdir(parents=True)
        spied: dict[int, Counter[str]] = {}
        spy = threading.Thread(
            target=lambda: spied.update(profile(python, a.seconds, stacks, a.gil))
        )
        spy.start()
        load_wrk(SERVICE_URL, sc, a.seconds, cursor.traffic["normal"], cursor.next["normal"])
        spy.join()
    finally:
        stop_service(proc, console)
    tx = r["ok"]
    rows: list[dict[str, Any]] = []
    for p in procs:
        if p.pid not in after:
            continue
        used = after[p.pid] - before.get(p.pid, 0.0)
        rows.append({"pid": p.pid, "role": roles.get(p.pid, "gone"), "cpu_s": used})
    by_role: Counter[str] = Counter()
    for each in rows:
        by_role[each["role"]] += each["cpu_s"]
    total = sum(by_role.values())
    console.print(f"idle: {idle_cores:.3f} cores ({settings or 'serve_config.yaml as is'})")
    for name, cores in sorted(idle.items(), key=lambda kv: -kv[1]):
        if cores >= 0.002:
            console.print(f"  {name:<40} {cores:6.3f} cores")
    console.print(
        f"{tx:,} single transactions in {r['seconds']:.1f} s ({r['transactions_per_s']:,.0f} "
        f"tx/s, p99 {r['p99_ms']:.1f} ms, flagged {r['flag_rate']:.1%}); server CPU "
        f"{1e6 * total / tx:,.0f} us per transaction"
    )
    for name, used in by_role.most_common():
        if used / total >= 0.005:
            console.print(f"  {name:<40} {1e6 * used / tx:8,.0f} us/tx  {used / total:6.1%}")
    profiles = []
    for pid, counts in spied.items():
        row: dict[str, Any] | None = next((x for x in rows if x["pid"] == pid), None)
        if row is None or not counts:
            continue
        samples = sum(counts.values())
        per_tx = 1e6 * row["cpu_s"] / tx
        console.print(f"{row['role']} (pid {pid}): {per_tx:,.0f} us/tx, {samples} samples")
        by_thread = threads_used(threads_before.get(pid, {}), threads_after.get(pid, {}))
        top = list(by_thread.items())[:8]
        row["threads_us_per_tx"] = {k: 1e6 * v / tx for k, v in top}
        console.print(
            "    threads (measured pass): "
            + ", ".join(f"{k} {1e6 * v / tx:,.0f}" for k, v in top[:5] if v > 0)
        )
        shares = {k: v / samples for k, v in counts.most_common()}
        for k, share in shares.items():
            if share >= 0.02:
                console.print(f"    {k:<36} {share:6.1%}  ~{per_tx * share:6,.0f} us/tx")
        profiles.append({**row, "us_per_tx": per_tx, "samples": samples, "activities": shares})
    save(
        "cpu",
        {
            "seconds": a.seconds,
            "concurrency": a.concurrency,
            "load": r,
            "app_args": settings,
            "idle_cores": idle_cores,
            "idle_cores_by_role": dict(sorted(idle.items(), key=lambda kv: -kv[1])),
            "server_us_per_tx": 1e6 * total / tx,
            "by_role_us_per_tx": {k: 1e6 * v / tx for k, v in by_role.most_common()},
            "processes": rows,
            "profiles": profiles,
            "pid": os.getpid(),
        },
    )


if __name__ == "__main__":
    main()
