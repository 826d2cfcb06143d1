"""The replay as a Ray Job: cards are split into K groups, each replayed by its own Ray task.

A card belongs to exactly one group, so per-card order holds while load scales out across
the cluster's nodes. Groups do not wait for each other, so terminal features can differ
slightly from a single ordered replay; use one worker when exact online = offline matters.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from features.ids import as_id_strings, id_buckets
from features.transactions import read_transactions
from simulator.replay import ReplayOptions, ReplayResult, replay_stream


def partition(users: pd.Series, k: int) -> np.ndarray:
    codes, uniques = pd.factorize(users)
    return id_buckets(as_id_strings(uniques), k, salt="worker:")[codes]


def _replay_part(path: str, part: int, k: int, opts: dict[str, Any]) -> dict[str, Any]:
    tx = read_transactions(path)
    mine = tx[partition(tx["user_id"], k) == part]
    result = asyncio.run(replay_stream(mine, ReplayOptions(**opts)))
    return dataclasses.asdict(result)


def replay_distributed(path: str, opts: ReplayOptions, workers: int) -> ReplayResult:
    """Run `workers` Ray tasks (num_cpus=0.5 each) and merge what they saw."""
    import ray

    if not ray.is_initialized():
        ray.init(log_to_driver=False)  # the job's cluster (RAY_ADDRESS) or a local one
    task = ray.remote(num_cpus=0.5)(_replay_part)
    parts = ray.get(
        [task.remote(path, i, workers, dataclasses.asdict(opts)) for i in range(workers)]
    )
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
