"""Fault tests: kill -9 a card shard mid-stream (SQLite and Redis state), a failing model.

Each run keeps a client ledger (every transaction id sent, retried with the same id until
answered) and checks every card's count and amount sum in the service against the distinct
accepted transactions: nothing lost, nothing counted twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from features.ids import IdHasher
from tests.ledger import LedgerClient
from tests.shard_actors import card_totals, shard_handles

pytestmark = pytest.mark.ray
REPO_MODELS = Path(__file__).resolve().parents[2] / "models"
N_TX = 5_000
START = dt.datetime(2018, 6, 1)


def make_stream(tag: str, n_users: int = 240) -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    users = rng.integers(0, n_users, N_TX)
    return [
        {
            "transaction_id": f"{tag}-{i}",
            "user_id": f"{tag}-card-{users[i]}",
            "terminal_id": f"{tag}-term-{rng.integers(0, 80)}",
            "amount": float(np.round(rng.uniform(1, 200), 2)),
            "timestamp": (START + dt.timedelta(seconds=30 * i)).isoformat(),
        }
        for i in range(N_TX)
    ]


async def run_stream(
    url: str,
    stream: list[dict[str, Any]],
    n_shards: int,
    kill: Any,
    ids: IdHasher,
    deadline_ms: float | None = None,
) -> tuple[LedgerClient, float]:
    """One lane per card shard (so a lane touches one card shard), batches of 10; `kill` runs
    once 30 % of the stream is answered. Returns the client and the kill time.
    `deadline_ms`: each batch's budget, as a gateway would set it; None waits for state."""
    client = LedgerClient(url, retry_for_s=90, deadline_ms=deadline_ms)
    lanes: list[list[dict[str, Any]]] = [[] for _ in range(n_shards)]
    for b in stream:
        lanes[ids.shard_of(b["user_id"], n_shards)].append(b)
    killed_at = 0.0

    async def lane(k: int) -> None:
        nonlocal killed_at
        items = lanes[k]
        for a in range(0, len(items), 10):
            if not killed_at and len(client.ledger.accepted) > 0.3 * len(stream):
                killed_at = time.monotonic()
                kill()
            await client.send(items[a : a + 10], lane=k)

    await asyncio.gather(*(lane(k) for k in range(n_shards)))
    await client.close()
    return client, killed_at


def check_ledger(
    client: LedgerClient,
    shards: Any,
    n_shards: int,
    stream: list[dict[str, Any]],
    ids: IdHasher,
) -> None:
    from ray import get

    ledger = client.ledger
    assert ledger.gave_up == [] and len(ledger.accepted) == len(stream)  # nothing refused
    per_card = ledger.per_card()
    by_shard: dict[int, list[str]] = {}
    for user in per_card:
        by_shard.setdefault(ids.shard_of(user, n_shards), []).append(user)
    for s, users in by_shard.items():
        totals = get(card_totals(shards[s], [ids.digest(u) for u in users]))
        for user, (count, amount) in zip(users, totals, strict=True):
            assert count == per_card[user][0], (
                f"{user}: service {count} != ledger {per_card[user][0]}"
            )
            assert amount == pytest.approx(per_card[user][1], abs=1e-6)


class Killer:
    """kill -9 of the shard's process (one our test cluster started), then a probe that
    records when the restarted shard answers again."""

    def __init__(self, handle: Any) -> None:
        import ray

        self.handle = handle
        self.pid = ray.get(handle.pid.remote())
        self.killed_at = self.back_at = 0.0
        self._probe = threading.Thread(target=self._wait_back, daemon=True)

    def __call__(self) -> None:
        self.killed_at = time.monotonic()
        os.kill(self.pid, signal.SIGKILL)
        self._probe.start()

    def _wait_back(self) -> None:
        import ray

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if ray.get(self.handle.pid.remote(), timeout=2) != self.pid:
                    self.back_at = time.monotonic()
                    return
            except Exception:
                time.sleep(0.05)

    def recovery_seconds(self) -> float:
        self._probe.join(timeout=60)
        assert self.back_at, "the shard did not come back within 60 s"
        return self.back_at - self.killed_at


def test_kill_card_shard_sqlite(
    service: str, app_args: dict[str, Any], service_ids: IdHasher
) -> None:
    n = int(app_args["n_user_shards"])
    shards = shard_handles("user", n, app_args)
    kill = Killer(shards[0])
    stream = make_stream("k9")
    client, killed_at = asyncio.run(run_stream(service, stream, n, kill, service_ids))
    assert killed_at > 0
    recovery = kill.recovery_seconds()
    check_ledger(client, shards, n, stream, service_ids)
    assert recovery < 15, f"shard 0 served again only after {recovery:.1f} s"
    # Other shards' lanes kept being answered while shard 0 restarted.
    ev = client.ledger.events
    others = [t for t, lane, st in ev if lane != 0 and st == 200 and killed_at < t < kill.back_at]
    assert others
    assert client.ledger.statuses.get("500", 0) == 0
    print(
        f"\nkill -9 (sqlite): shard back in {recovery:.2f} s, statuses {client.ledger.statuses}, "
        f"client retries {client.ledger.retries}, accepted {len(client.ledger.accepted)}, "
        f"answered on other shards meanwhile {len(others)}"
    )


@pytest.fixture
def redis_app(
    ray_cluster: None, service: str, app_args: dict[str, Any], redis_url: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """A second app whose shards keep state in Redis (the session's, under its own prefix),
    with the default answer deadline."""
    import redis
    from ray import serve

    from deployments.app import application
    from tests.service.conftest import PINNED, wait_healthy
    from tests.shard_actors import kill_shard_actors

    prefix = f"fraudtest-{uuid.uuid4().hex[:8]}"
    args = {
        "n_user_shards": 2,
        "n_terminal_shards": 1,
        "id_key": app_args["id_key"],
        "state": {
            "backend": "redis",
            "redis_url": redis_url,
            "prefix": prefix,
            "snapshot_every": 300,
        },
    }
    serve.run(application(args, PINNED), name="fraud-redis", route_prefix="/redis")
    url = f"{service}/redis"
    wait_healthy(url, "the Redis-state app")
    yield url, args
    serve.delete("fraud-redis")
    kill_shard_actors(2, 1, args)
    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(f"{prefix}:*"))
    if keys:
        r.delete(*keys)


def test_kill_card_shard_redis(
    redis_app: tuple[str, dict[str, Any]], service_ids: IdHasher
) -> None:
    url, args = redis_app
    shards = shard_handles("user", 2, args)
    kill = Killer(shards[1])
    stream = make_stream("r9")
    client, killed_at = asyncio.run(run_stream(url, stream, 2, kill, service_ids, 250))
    assert killed_at > 0
    recovery = kill.recovery_seconds()
    # The client asks for a 250 ms budget (the single route's default): while the shard
    # restarted, its lane was answered in time without card state, and those steps were
    # applied once it was back.
    stats = caught_up(url)
    degraded = stats["degraded"].get("card_state_late", 0)
    assert degraded > 0, "the restart was waited for, not answered within the deadline"
    check_ledger(client, shards, 2, stream, service_ids)
    print(
        f"\nkill -9 (redis): shard back in {recovery:.2f} s, statuses {client.ledger.statuses}, "
        f"client retries {client.ledger.retries}, accepted {len(client.ledger.accepted)}, "
        f"answered degraded {degraded}"
    )


def caught_up(url: str, timeout_s: float = 60) -> dict[str, Any]:
    """`/v1/stats` once no degraded answer's card step or terminal write is still waiting."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats: dict[str, Any] = httpx.get(f"{url}/v1/stats", timeout=10).json()
        if not stats["late_card_steps"] and not stats["terminal_writes_pending"]:
            return stats
        assert time.monotonic() < deadline, f"still behind after {timeout_s:.0f} s: {stats}"
        time.sleep(0.2)


def test_model_replica_killed_under_load_then_a_failing_model(
    service: str, app_args: dict[str, Any], tmp_path: Any
) -> None:
    """A dead replica is failed over (or answered 503 + Retry-After and retried): every
    transaction ends with a score. A model that raises gives 503 `model_failed`, never a
    silent LEGIT."""
    import json
    import shutil

    import ray
    from ray import serve

    from deployments.http.ingress import Ingress
    from deployments.model.scorer import ModelScorer
    from deployments.settings import AppArgs
    from features.spec import FEATURE_NAMES
    from policy.decision import Thresholds
    from training import booster as bst
    from training.export import to_onnx

    stream = make_stream("mk")[:1_500]
    client = LedgerClient(service, retry_for_s=90)
    health: list[int] = []  # /healthz while the ModelScorer is dead and restarting

    async def load() -> None:
        async def lane(k: int) -> None:
            for a in range(k * 10, len(stream), 40):
                await client.send(stream[a : a + 10], lane=k)

        async def kill_soon() -> None:
            await asyncio.sleep(1.0)
            names = [
                a["name"]
                for a in ray.util.list_named_actors(all_namespaces=True)
                if "ModelScorer" in a["name"] and a["name"].startswith("SERVE_REPLICA")
            ]
            ray.kill(ray.get_actor(names[0], namespace="serve"), no_restart=True)
            async with httpx.AsyncClient(timeout=10) as probe:
                for _ in range(40):  # 4 s from the kill
                    health.append((await probe.get(f"{service}/healthz")).status_code)
                    await asyncio.sleep(0.1)

        await asyncio.gather(kill_soon(), *(lane(k) for k in range(4)))
        await client.close()

    asyncio.run(load())
    # Scoring in process (the default), answers never needed the ModelScorer: nor does health.
    assert app_args.get("score_in_process", True) and set(health) == {200}, health
    ledger = client.ledger
    assert ledger.gave_up == [] and len(ledger.accepted) == len(stream)
    assert all(0.0 <= e["score"] <= 1.0 and e["decision"] for e in ledger.accepted.values())
    print(f"\nmodel replica kill: statuses {ledger.statuses}, client retries {ledger.retries}")

    # A model that loads but cannot score (its graph takes 19 inputs, not 20).
    x = np.random.default_rng(0).normal(size=(200, len(FEATURE_NAMES) - 1)).astype(np.float32)
    params = {k: v for k, v in bst.DEFAULT_PARAMS.items() if k != "monotone_constraints"}
    model, _ = bst.fit_booster(x, (x[:, 0] > 0).astype(np.float32), params, 3)
    broken = tmp_path / "broken"
    shutil.copytree(REPO_MODELS / "default", broken)
    (broken / "model.onnx").write_bytes(to_onnx(model, x.shape[1]))
    card = json.loads((broken / "model_card.json").read_text())
    (broken / "model_card.json").write_text(json.dumps({**card, "version": "broken"}))

    def deploy(model_dir: str) -> None:
        app = Ingress.options(user_config={"thresholds": Thresholds().model_dump()}).bind(
            ModelScorer.options(user_config={"model_dir": model_dir}).bind(),
            AppArgs(**app_args),
        )
        serve.run(app, name="fraud", route_prefix="/")

    def post_until(tx: dict[str, Any], done: Any) -> httpx.Response:
        """Replicas that score in process follow the ModelScorer within ~1 s."""
        deadline = time.monotonic() + 30
        while True:
            r = httpx.post(f"{service}/v1/transactions", json=tx, timeout=30)
            if done(r) or time.monotonic() > deadline:
                return r
            time.sleep(0.2)

    deploy(str(broken))
    try:
        tx = {**stream[0], "transaction_id": "mk-broken-1"}
        r = post_until(tx, lambda r: r.status_code != 200)
        assert r.status_code == 503 and r.json()["reason"] == "model_failed", r.text
        assert r.headers["retry-after"]
    finally:
        deploy(str(REPO_MODELS / "default"))
    # The same request, retried once a working model is back, is answered with a score.
    r = post_until(tx, lambda r: r.status_code == 200)
    assert r.status_code == 200 and r.json()["model_version"].startswith("default-")
