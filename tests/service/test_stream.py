"""The durable stream path (Redis Streams): every transaction decided once, the same as
offline, invalid entries answered with the field named, and a consumer killed mid-stream
loses nothing and counts nothing twice (its pending entries are reclaimed)."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
import uuid
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
import redis

from features.ids import IdHasher
from simulator.config import SimulationConfig
from simulator.generate import generate_days

pytestmark = pytest.mark.ray


def stream_frame(seed: int) -> pd.DataFrame:
    cfg = SimulationConfig(n_customers=120, n_terminals=200, n_days=3, seed=seed)
    from features.transactions import normalise

    df = normalise(pd.concat(list(generate_days(cfg)), ignore_index=True))
    df["transaction_id"] = f"st{seed}-" + df["transaction_id"].astype(str)
    df["user_id"] = f"st{seed}-card-" + df["user_id"].astype(str)
    return df


def kill_consumer() -> int:
    """kill -9 a StreamConsumer replica's process (Serve starts a new one)."""
    from ray import serve

    handle = serve.get_deployment_handle("StreamConsumer", app_name="fraud-stream")
    pid = int(handle.stats.remote().result()["pid"])
    os.kill(pid, signal.SIGKILL)
    return pid


def test_stream_path_decides_every_transaction_once_across_a_crash(
    service: str, service_ids: IdHasher, app_args: dict[str, Any], redis_url: str
) -> None:
    from ray import serve

    from deployments.app import application
    from models.onnx import load_model
    from policy.decision import Thresholds
    from simulator.stream_replay import StreamReplayOptions, replay_to_stream
    from tests.service.conftest import PINNED
    from tests.shard_actors import assert_counted_once, kill_shard_actors
    from training.scoring import score_transactions

    prefix = f"fraudtest-{uuid.uuid4().hex[:8]}"
    stream = {"enabled": True, "redis_url": redis_url, "input_prefix": f"{prefix}:tx",
              "results_prefix": f"{prefix}:decisions", "partitions": 2, "read_count": 200,
              "reclaim_idle_ms": 1000}  # fmt: skip
    args = {"n_user_shards": 2, "n_terminal_shards": 3, "state": {"backend": "memory"},
            "stream": stream, "id_key": app_args["id_key"]}  # fmt: skip
    serve.run(application(args, PINNED), name="fraud-stream", route_prefix="/stream")
    opts = StreamReplayOptions(
        redis_url=redis_url, input_prefix=f"{prefix}:tx", results_prefix=f"{prefix}:decisions",
        partitions=2, labels=False, chunk=500, wait_seconds=90, entry_size=1,
    )  # fmt: skip
    r = redis.Redis.from_url(redis_url)
    try:
        # 1. Decided once each (one transaction per entry), as offline would (no labels in
        # play, so no timing between partitions matters).
        first = stream_frame(1)
        result = replay_to_stream(first, opts)
        assert result.errors == {} and len(result.rows) == len(first)
        online = pd.DataFrame(result.rows).set_index("transaction_id")["score"]
        model = load_model("models/default")
        offline = score_transactions(first, model, Thresholds(), use_labels=False)
        offline = offline.set_index("transaction_id")["score"]
        np.testing.assert_allclose(online.loc[offline.index], offline, atol=1e-6)

        # 2. Invalid entries are answered, naming the field; labels go through feedback.
        r.xadd(f"{prefix}:tx:0", {"kind": "tx", "body": orjson.dumps({"transaction_id": "bad-1"})})
        label = {"transaction_id": first["transaction_id"].iloc[0],
                 "terminal_id": str(first["terminal_id"].iloc[0]), "is_fraud": True}  # fmt: skip
        r.xadd(f"{prefix}:tx:0", {"kind": "label", "body": orjson.dumps(label)})
        deadline = time.monotonic() + 30
        bad: list[Any] = []
        while not bad and time.monotonic() < deadline:
            entries = r.xrange(f"{prefix}:decisions:0")
            bad = [f for _, f in entries if f[b"transaction_id"] == b"bad-1"]
            time.sleep(0.2)
        assert bad and bad[0][b"decision"] == b"INVALID"
        assert b"user_id" in bad[0][b"body"] and b"amount" in bad[0][b"body"]

        # 3. Kill the consumer mid-stream: Serve restarts it, pending entries are reclaimed.
        second = stream_frame(2)
        killed = threading.Event()

        def kill_soon() -> None:
            time.sleep(1.5)
            kill_consumer()
            killed.set()

        killer = threading.Thread(target=kill_soon)
        killer.start()
        packed = dataclasses.replace(opts, entry_size=50)  # many transactions per entry
        result = replay_to_stream(second, packed)
        killer.join()
        assert killed.is_set()
        assert result.errors == {} and len(result.rows) == len(second)
        # Each card's state counted each transaction exactly once.
        assert_counted_once(second, service_ids, 2, 3)
    finally:
        serve.delete("fraud-stream")
        kill_shard_actors(2, 3)
        for key in r.scan_iter(f"{prefix}:*"):
            r.delete(key)
        r.close()
