"""The simulator as a Ray Job: generation and replay split across Ray tasks by card.

Generation: task i writes part i of a partitioned table (`features.parts`) straight to the
destination, so no row passes through the driver; the driver writes the manifest last.

Replay: cards are split into K groups, each replayed by its own task. A card belongs to
exactly one group, so per-card order holds while load scales out across the cluster's
nodes. On a partitioned table a group is a set of parts, and its task reads only those.
Groups do not wait for each other, so terminal features can differ slightly from a single
ordered replay; use one worker when exact online = offline matters. A replay goes over HTTP
(`ReplayOptions`) or to Kafka (`KafkaReplayOptions`: each task produces its cards to the
input topic and reads their decisions back).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from features.ids import as_id_strings, id_buckets
from features.parts import Manifest, PartsError, is_partitioned, prepare, read_manifest
from features.parts import write_manifest as save_manifest
from features.transactions import read_transactions
from simulator.config import SimulationConfig
from simulator.generate import Progress, part_blocks, summary, write_part
from simulator.kafka_replay import KafkaReplayOptions, replay_to_kafka
from simulator.replay import ReplayOptions, ReplayResult, replay_stream


def _ray() -> Any:
    import ray

    if not ray.is_initialized():
        ray.init(log_to_driver=False)  # the job's cluster (RAY_ADDRESS) or a local one
    return ray


def generate_distributed(
    cfg: SimulationConfig, dest: str, workers: int, progress: Progress = None
) -> dict[str, float]:
    """Write the simulation as `workers` parts at `dest` (a directory every worker's node
    can write, or a URI), one Ray task (one CPU) per part; returns its statistics."""
    part_blocks(cfg, 0, workers)  # refuse more workers than blocks before writing anything
    prepare(dest)
    source = {"simulation": cfg.model_dump(mode="json")}
    if workers == 1:
        counts = [write_part(cfg, dest, 0, 1, progress)]
    else:
        ray = _ray()
        task = ray.remote(num_cpus=1)(write_part)
        refs = [task.remote(cfg, dest, i, workers) for i in range(workers)]
        pending = list(refs)
        while pending:  # progress as parts finish
            _, pending = ray.wait(pending, num_returns=1)
            if progress is not None:
                progress(workers - len(pending), workers)
        counts = ray.get(refs)
    total = {k: sum(c[k] for c in counts) for k in counts[0]}
    stats = summary(total, cfg.n_days)
    rows = [c["transactions"] for c in counts]
    save_manifest(dest, Manifest(parts=workers, rows=rows, stats=stats, source=source))
    return stats


def partition(users: pd.Series, k: int) -> np.ndarray:
    codes, uniques = pd.factorize(users)
    return id_buckets(as_id_strings(uniques), k, salt="worker:")[codes]


def _replay_part(
    path: str, part: int, k: int, opts: dict[str, Any], kafka: bool = False
) -> dict[str, Any]:
    if is_partitioned(path):
        n_parts = read_manifest(path).parts
        mine = read_transactions(path, parts=range(part, n_parts, k))
    else:
        tx = read_transactions(path)
        mine = tx[partition(tx["user_id"], k) == part]
    if kafka:
        result = replay_to_kafka(mine, KafkaReplayOptions(**opts))
    else:
        result = asyncio.run(replay_stream(mine, ReplayOptions(**opts)))
    return dataclasses.asdict(result)


def replay_distributed(
    path: str, opts: ReplayOptions | KafkaReplayOptions, workers: int
) -> ReplayResult:
    """Run `workers` Ray tasks (num_cpus=0.5 each) and merge what they saw. On a
    partitioned table, task i replays parts i, i + workers, ..."""
    if is_partitioned(path) and workers > (n := read_manifest(path).parts):
        raise PartsError(f"workers: {workers} asked for, but {path} has {n} part(s)")
    ray = _ray()
    task = ray.remote(num_cpus=0.5)(_replay_part)
    kafka = isinstance(opts, KafkaReplayOptions)
    settings = dataclasses.asdict(opts)
    parts = ray.get([task.remote(path, i, workers, settings, kafka) for i in range(workers)])
    merged = ReplayResult()
    for p in parts:
        merged.rows.extend(p["rows"])
        merged.labels_sent += p["labels_sent"]
        merged.labels_not_found += p["labels_not_found"]
        merged.retries += p["retries"]
        for key, n in p["errors"].items():
            merged.errors[key] = merged.errors.get(key, 0) + n
        merged.wall_seconds = max(merged.wall_seconds, p["wall_seconds"])
        merged.stopped_early |= p["stopped_early"]
    return merged
