"""Helpers shared by the benchmarks: timing, machine description, JSON output."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def repeat(fn: Callable[[], object], times: int) -> list[float]:
    """Wall seconds of `times` runs of `fn`."""
    out = []
    for _ in range(times):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def percentiles_us(samples_s: list[float]) -> dict[str, float]:
    xs = sorted(samples_s)

    def q(p: float) -> float:
        return xs[min(len(xs) - 1, int(p * len(xs)))] * 1e6

    return {"p50_us": statistics.median(xs) * 1e6, "p95_us": q(0.95), "p99_us": q(0.99)}


def command() -> str:
    """How this run was started (`python -m benchmarks <suite> ...` or a suite's module)."""
    script = Path(sys.argv[0])
    module = "benchmarks" if script.name == "__main__.py" else f"benchmarks.{script.stem}"
    return " ".join(["python -m", module, *sys.argv[1:]])


def save(name: str, result: dict[str, Any]) -> Path:
    """`benchmarks/results/<name>.json`: the result with the machine and the command."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    body = {"machine": machine(), "command": command(), **result}
    path.write_text(json.dumps(body, indent=2, default=str) + "\n")
    print(f"saved {path}")
    return path


def add_app_args(ap: argparse.ArgumentParser) -> None:
    """`--set NAME=JSON`, repeatable: app arguments on top of serve_config.yaml."""
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="an app argument on top of serve_config.yaml, e.g. n_user_shards=4",
    )


def app_args(ns: argparse.Namespace) -> dict[str, Any]:
    """The `--set` arguments as a dict of JSON values."""
    return {k: json.loads(v) for k, _, v in (x.partition("=") for x in ns.set)}


def cpu_by_pid(processes: Iterable[Any]) -> dict[int, float]:
    """User + system CPU seconds of each of these `psutil.Process`es (ones gone are left out)."""
    import psutil

    out = {}
    for p in processes:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def cpu_of(processes: Iterable[Any]) -> float:
    """User + system CPU seconds of these `psutil.Process`es (ones gone meanwhile count 0)."""
    return sum(cpu_by_pid(processes).values())


def tree(pid: int) -> list[Any]:
    """A process and all its descendants (for `serve run`: Ray's whole tree)."""
    import psutil

    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]
