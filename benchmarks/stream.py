"""The stream path end to end: `serve run` with `stream.enabled`, transactions (and their
labels) appended by `fraud replay --sink redis-stream` / `--sink kafka`'s producer, decisions
read back from the results streams / the decisions topic.

Redis Streams: the machine's Redis on 127.0.0.1:6379. Kafka: a broker of the benchmark's own
(`fraud kafka`, KRaft, free ports), decisions read with read_committed, so a decision counts
once its transaction committed. Reports end-to-end transactions/s (first entry appended ->
last decision read), latency (input -> decision: Redis entry ids, Kafka message timestamps;
it includes time queued behind the backlog when the producer appends as fast as it can), and
CPU-seconds per 1,000 transactions for the service and for the broker. Bounded in count and
time; loopback only.
Run: python -m benchmarks stream [--transactions 200000] [--partitions 4]
     [--broker redis|kafka|both].
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import psutil
import redis
import yaml
from rich.console import Console

from benchmarks.common import add_app_args, app_args, cpu_of, save
from benchmarks.compare import cpu_seconds
from cli.demo import URL, demo_config, start_broker, start_service, stop_service, wait_healthy
from cli.kafka import KafkaBroker
from deployments.stream.contract import KafkaConfig
from deployments.stream.kafka import ensure_topics
from features.transactions import normalise
from simulator.config import SimulationConfig
from simulator.generate import generate_days
from simulator.kafka_replay import KafkaReplayOptions, replay_to_kafka
from simulator.replay import ReplayResult
from simulator.stream_replay import StreamReplayOptions, replay_to_stream

REDIS_URL = "redis://127.0.0.1:6379/0"


def stream_config(
    directory: Path,
    stream: dict[str, Any],
    args: dict[str, Any] | None = None,
) -> Path:
    path = demo_config(directory, args)
    doc = yaml.safe_load(path.read_text())
    for application in doc["applications"]:
        if application["name"] == "fraud":
            application["args"]["stream"] = stream
    out = directory / "stream-serve-config.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def redis_cpu() -> float:
    """CPU seconds of the local redis-server processes (read only)."""
    return cpu_of(p for p in psutil.process_iter(["name"]) if p.info["name"] == "redis-server")


def transactions(n: int, seed: int = 11) -> pd.DataFrame:
    days = max(2, int(np.ceil(n / (5_000 * 1.95))))
    cfg = SimulationConfig(n_customers=5_000, n_terminals=10_000, n_days=days, seed=seed)
    df = normalise(pd.concat(list(generate_days(cfg)), ignore_index=True))
    return df.head(n)


def run(
    console: Console,
    n: int,
    partitions: int,
    read_count: int,
    entry_size: int,
    labels: bool,
    rate: float | None = None,
    fast: bool = True,
    args: dict[str, Any] | None = None,
    broker: str = "redis",
) -> dict[str, Any]:
    """`fast`: Serve's throughput-optimized mode, as every documented start runs it; `args`:
    app arguments on top of serve_config.yaml; `broker`: redis or kafka."""
    data = Path("data")
    chunk = max(50, int(rate / 20)) if rate else 2_000
    kafka: KafkaBroker | None = None
    replay: Callable[[pd.DataFrame, float | None], ReplayResult]
    if broker == "kafka":
        kafka = start_broker(console, data / "bench-kafka")
        topics = KafkaConfig(bootstrap_servers=kafka.bootstrap, partitions=partitions)
        ensure_topics(topics)
        stream = {"enabled": True, "broker": "kafka", "read_count": read_count,
                  "kafka": topics.model_dump()}  # fmt: skip
        kopts = KafkaReplayOptions(
            bootstrap_servers=kafka.bootstrap, labels=labels, wait_seconds=300,
            entry_size=entry_size, chunk=chunk,
        )  # fmt: skip

        def replay(df: pd.DataFrame, r: float | None) -> ReplayResult:
            return replay_to_kafka(df, dataclasses.replace(kopts, rate=r))

        def broker_cpu() -> float:
            pid = kafka.pid() if kafka else None
            return cpu_of([psutil.Process(pid)]) if pid else 0.0
    else:
        prefix = f"fraudbench-{uuid.uuid4().hex[:8]}"
        stream = {"enabled": True, "redis_url": REDIS_URL, "input_prefix": f"{prefix}:tx",
                  "results_prefix": f"{prefix}:decisions", "partitions": partitions,
                  "read_count": read_count}  # fmt: skip
        sopts = StreamReplayOptions(
            redis_url=REDIS_URL, input_prefix=f"{prefix}:tx",
            results_prefix=f"{prefix}:decisions", partitions=partitions, labels=labels,
            wait_seconds=300, entry_size=entry_size, chunk=chunk,
        )  # fmt: skip

        def replay(df: pd.DataFrame, r: float | None) -> ReplayResult:
            return replay_to_stream(df, dataclasses.replace(sopts, rate=r))

        broker_cpu = redis_cpu
    config = stream_config(data, stream, args)
    proc = start_service(console, data / "logs" / "bench-stream.log", config, fast=fast)
    try:
        wait_healthy(proc)
        tx = transactions(n)
        warm = tx.head(5_000).copy()
        warm["transaction_id"] = "warm-" + warm["transaction_id"].astype(str)
        warm["user_id"] = "warm-" + warm["user_id"].astype(str)
        console.print(f"{broker}: warm-up, 5,000 transactions")
        replay(warm, None)
        console.print(f"{broker}: {len(tx):,} transactions, {partitions} partitions")
        cpu0, broker0, own0 = cpu_seconds(proc.pid), broker_cpu(), time.process_time()
        result = replay(tx, rate)
        wall = result.wall_seconds  # first entry appended -> last decision read
        cpu, bcpu = cpu_seconds(proc.pid) - cpu0, broker_cpu() - broker0
        producer_cpu = time.process_time() - own0
        consumer = httpx.get(f"{URL}/v1/stats", timeout=30).json()["stream"]
    finally:
        stop_service(proc, console)
        if kafka is not None:
            kafka.stop()
        else:
            r = redis.Redis.from_url(REDIS_URL)
            for key in r.scan_iter(f"{prefix}:*"):
                r.delete(key)
            r.close()
    rows = pd.DataFrame(result.rows)
    lat = rows["latency_ms"].to_numpy() if len(rows) else np.zeros(1)
    decided = len(rows)
    return {
        "broker": broker,
        "transactions": len(tx),
        "decided": decided,
        "labels": result.labels_sent,
        "errors": result.errors,
        "partitions": partitions,
        "read_count": read_count,
        "entry_size": entry_size,
        "rate": rate,
        "app_args": args or {},
        "seconds": wall,
        "tx_per_s": decided / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)),
        "service_cpu_s_per_1k": 1000 * cpu / max(decided, 1),
        "broker_cpu_s_per_1k": 1000 * bcpu / max(decided, 1),
        # The client (set-up, appending, reading decisions) shares the service's cores.
        "client_cpu_s_per_1k": 1000 * producer_cpu / max(decided, 1),
        "decisions": rows["decision"].value_counts().to_dict() if len(rows) else {},
        "consumer": consumer,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks stream")
    ap.add_argument("--transactions", type=int, default=200_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--read-count", type=int, default=40, help="entries per read")
    ap.add_argument("--entry-size", type=int, default=100, help="transactions per entry")
    ap.add_argument("--no-labels", action="store_true")
    ap.add_argument("--rate", type=float, default=None, help="tx/s to append at (default: max)")
    ap.add_argument("--bare", action="store_true", help="Serve's defaults, not the throughput mode")
    ap.add_argument(
        "--broker", choices=("redis", "kafka", "both"), default="redis",
        help="both: Redis Streams then Kafka, side by side in one run",
    )  # fmt: skip
    add_app_args(ap)
    args = ap.parse_args(argv)
    settings = app_args(args)
    console = Console()
    brokers = ("redis", "kafka") if args.broker == "both" else (args.broker,)
    runs = []
    for broker in brokers:
        out = run(
            console, args.transactions, args.partitions, args.read_count, args.entry_size,
            not args.no_labels, args.rate, fast=not args.bare, args=settings, broker=broker,
        )  # fmt: skip
        console.print(summary(out))
        runs.append(out)
    save("stream", runs[0] if len(runs) == 1 else {"runs": runs})


def summary(out: dict[str, Any]) -> str:
    return (
        f"stream path ({out['broker']}): {out['decided']:,}/{out['transactions']:,} decided in "
        f"{out['seconds']:.1f} s = {out['tx_per_s']:,.0f} tx/s end to end; latency p50 "
        f"{out['p50_ms']:.0f} ms, p99 {out['p99_ms']:.0f} ms (backlog included); CPU s/1k: "
        f"service {out['service_cpu_s_per_1k']:.3f}, broker {out['broker_cpu_s_per_1k']:.3f}, "
        f"client {out['client_cpu_s_per_1k']:.3f}"
    )


if __name__ == "__main__":
    main()
