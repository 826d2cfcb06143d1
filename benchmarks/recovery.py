"""Restart-to-serving time of a card shard holding 100,000 cards (handbook activity: ~72
events each in 30 days) from its store: snapshot load plus log replay.

Run: python -m benchmarks recovery [--users 100000] [--log-records 2000]. The figure excludes
Ray's own actor restart (~2 s here, measured by tests/service/test_faults.py).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from actors.actor.shards import UserShard
from actors.events import CardEvents
from actors.store.backends import SqliteStore, StateStore
from benchmarks.common import save
from features.ids import OFFLINE
from features.spec import CARD_WIDTH, MS_PER_DAY

DAY = MS_PER_DAY


def build(
    users: int, events: int, store: StateStore | None, state: dict[str, Any] | None = None
) -> UserShard:
    """A card shard on `store` (or one its `state:` config opens) holding `users` cards with
    `events` kept events each and a full dedup index; it takes no checkpoint by itself."""
    settings = {"state": state or {"backend": "memory", "snapshot_every": 10**9}}
    shard = UserShard(0, 1, settings, store)
    keys = [OFFLINE.digest(f"card-{i}") for i in range(users)]
    slots = shard.users.slots_for(keys)
    rng = np.random.default_rng(0)
    t0 = 1_530_000_000_000
    per_round = users
    for r in range(events):
        times = t0 + r * (30 * DAY // events) + rng.integers(0, 3_600_000, per_round)
        shard.users.update(
            slots,
            times,
            rng.uniform(1, 150, per_round),
            rng.integers(-(2**31), 2**31 - 1, per_round, dtype=np.int32),
        )
    n = min(shard.settings.dedup.max_entries, users * events)  # a full dedup index
    shard.dedup.record_many(
        [f"tx-{i}" for i in range(n)],
        np.arange(n),
        np.full(n, t0 + 30 * DAY),
        np.zeros((n, CARD_WIDTH)),
        [keys[i % users] for i in range(n)],
    )
    return shard


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=72, help="kept events per card")
    ap.add_argument("--log-records", type=int, default=2_000, help="requests after the snapshot")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp))
        t0 = time.perf_counter()
        shard = build(args.users, args.events, store)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        shard.checkpoint()
        snapshot_s = time.perf_counter() - t0
        snap_bytes = sum(f.stat().st_size for f in Path(tmp).iterdir())
        rng = np.random.default_rng(1)
        for i in range(args.log_records):  # single-transaction requests after the snapshot
            u = int(rng.integers(0, args.users))
            shard.process(
                CardEvents.without_writes(
                    [f"new-{i}"],
                    np.array([i]),
                    [OFFLINE.digest(f"card-{u}")],
                    np.array([1_530_000_000_000 + 31 * DAY + i]),
                    np.array([20.0]),
                    np.array([7], np.int32),
                )
            )
        t0 = time.perf_counter()
        restarted = UserShard(0, 1, {"state": {"backend": "memory"}}, store)
        restart_s = time.perf_counter() - t0
        assert len(restarted.users) == args.users and restarted.replayed == args.log_records
        probe = restarted.process(
            CardEvents.without_writes(
                ["probe"],
                np.array([0]),
                [OFFLINE.digest("card-1")],
                np.array([1_530_000_000_000 + 32 * DAY]),
                np.array([5.0]),
                np.array([1], np.int32),
            )
        )
        assert probe.status[0] == 0
    result = {
        "users": args.users,
        "events_per_user": args.events,
        "log_records": args.log_records,
        "state_bytes_in_memory": shard.users.state_nbytes(),
        "store_bytes": snap_bytes,
        "build_s": build_s,
        "snapshot_s": snapshot_s,
        "restart_to_serving_s": restart_s,
        "replay_records_per_s": args.log_records / max(restart_s, 1e-9),
    }
    print(
        f"{args.users:,} cards: snapshot {snap_bytes / 1e6:.0f} MB in {snapshot_s:.1f} s; "
        f"restart to serving {restart_s:.2f} s (snapshot load + {args.log_records} log records)"
    )
    save("recovery", result)


if __name__ == "__main__":
    main()
