"""Generation throughput of `fraud simulate` by worker count, on the handbook-sized stream.

Each run writes a partitioned table to a fresh temporary directory with `--workers K` (K=1 in
the calling process; K>1 as K Ray tasks of one CPU each on a local Ray cluster started once,
its start-up not counted), and the one-file path (`--output x.parquet`) beside them. Runs are
interleaved (1, 2, 4, one-file, 1, 2, 4, ...) so drift on a shared machine hits all alike;
the table gives the median of `--repeat` runs.
Run: python -m benchmarks simulate [--customers 5000] [--days 183] [--workers 1,2,4].
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import save
from simulator.config import SimulationConfig
from simulator.distributed import generate_distributed
from simulator.generate import write_parquet


def _timed(run: Callable[..., dict[str, float]], *args: Any) -> tuple[float, int]:
    t0 = time.perf_counter()
    stats = run(*args)
    return time.perf_counter() - t0, int(stats["transactions"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks simulate")
    ap.add_argument("--customers", type=int, default=5_000)
    ap.add_argument("--days", type=int, default=183)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    cfg = SimulationConfig(n_customers=args.customers, n_days=args.days, seed=7)
    counts = [int(k) for k in args.workers.split(",")]

    import ray

    ray.init(log_to_driver=False, include_dashboard=False)
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        generate_distributed(cfg.model_copy(update={"n_days": 2}), f"{tmp}/warm", max(counts))
        walls: dict[str, list[float]] = {}
        rows = 0
        for r in range(args.repeat):
            for k in counts:
                wall, rows = _timed(generate_distributed, cfg, f"{tmp}/k{k}-{r}", k)
                walls.setdefault(f"workers={k}", []).append(wall)
                print(f"run {r + 1}: {k} worker(s) {wall:.2f} s, {rows / wall:,.0f} tx/s")
            wall, rows = _timed(write_parquet, cfg, Path(tmp) / f"one-{r}.parquet")
            walls.setdefault("one file", []).append(wall)
            print(f"run {r + 1}: one file {wall:.2f} s, {rows / wall:,.0f} tx/s")
    ray.shutdown()

    base = statistics.median(walls[f"workers={counts[0]}"])
    table = {
        name: {
            "median_s": round(statistics.median(ws), 3),
            "runs_s": [round(w, 3) for w in ws],
            "tx_per_s": round(rows / statistics.median(ws)),
            "speed_vs_first": round(base / statistics.median(ws), 2),
        }
        for name, ws in walls.items()
    }
    print(f"\n{rows:,} transactions ({args.customers:,} cards x {args.days} days)")
    for name, row in table.items():
        print(
            f"{name:>10}: {row['median_s']:6.2f} s  {row['tx_per_s']:>10,} tx/s  "
            f"{row['speed_vs_first']:.2f}x"
        )
    save("simulate", {"transactions": rows, "config": cfg.model_dump(mode="json"), **table})
