"""What checkpoints cost the requests of a card shard, and its restart time, by shard size.

A card shard holding N cards (handbook activity: 72 kept events each) and a full dedup
index, on SQLite (the default store), answers single-transaction requests one after
another in phases: checkpoints off, on, off, on (`snapshot_every` 2,000, folded into a full
checkpoint every 4), so the two are compared side by side in one run. Per phase: request
latency p50/p99/max; for the phases with checkpoints, the requests that took a capture
(the only checkpoint work done under the request lock) and the writer's time per
checkpoint off the lock; and every request over 5 ms with what ran meanwhile (a capture,
the writer or compactor, a garbage collection). Then the shard restarts from its store:
time to serving.

Run: python -m benchmarks checkpoints [--users 100000,1000000] [--requests 10000]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from typing import Any

import numpy as np

from actors.actor.journal import ShardSettings
from actors.actor.shards import UserShard
from actors.events import CardEvents
from benchmarks.common import save
from benchmarks.recovery import build
from features.ids import OFFLINE
from features.spec import MS_PER_DAY

T0 = 1_530_000_000_000
WARMUP = 50  # requests per phase not counted: the first after a phase starts pays set-up
SLOW_S = 0.005  # requests slower than this are listed with what ran meanwhile


def _state(path: str, every: int) -> dict[str, Any]:
    """The service's store: SQLite, opened from its config (so compactions run in a
    process of their own, as in the service)."""
    return {"backend": "sqlite", "path": path, "snapshot_every": every, "compact_every": 4}


def _ms(xs: list[float] | np.ndarray) -> dict[str, float]:
    a = np.asarray(xs) * 1e3
    if not len(a):
        return {}
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(a.max()),
    }


class Pauses:
    """The interpreter's garbage collections, timed, to tell their pauses from others."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.spans.append((self._started, time.perf_counter()))

    def during(self, t0: float, t1: float) -> bool:
        return any(a < t1 and b > t0 for a, b in self.spans)


def _phase(shard: UserShard, users: int, requests: int, start: int) -> dict[str, Any]:
    rng = np.random.default_rng(start)
    cards = rng.integers(0, users, requests)
    latencies, captures, slow = [], [], []
    every = shard.settings.state.snapshot_every
    pauses = Pauses()
    gc.callbacks.append(pauses)
    try:
        for i in range(requests):
            key = OFFLINE.digest(f"card-{cards[i]}")
            writing = shard._pending is not None and not shard._pending.done()
            t0 = time.perf_counter()
            shard.process(CardEvents.without_writes(
                [f"bench-{start + i}"], np.array([start + i]), [key],
                np.array([T0 + 31 * MS_PER_DAY + start + i]), np.array([20.0]),
                np.array([7], np.int32),
            ))  # fmt: skip
            t1 = time.perf_counter()
            if i < WARMUP:
                continue
            latencies.append(t1 - t0)
            captured = shard.snapshot_seq == shard.seq and every < 10**9
            if captured:
                captures.append(t1 - t0)
            if t1 - t0 > SLOW_S:
                slow.append({
                    "ms": round((t1 - t0) * 1e3, 2), "capture": captured,
                    "writer_busy": writing, "gc": pauses.during(t0, t1),
                })  # fmt: skip
    finally:
        gc.callbacks.remove(pauses)
    shard.flush()
    return {
        "requests": requests - WARMUP, **_ms(latencies), "capture_requests": _ms(captures),
        "slow_requests": slow,
    }  # fmt: skip


def run_size(users: int, events: int, requests: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        shard = build(users, events, None, _state(tmp, 10**9))
        t0 = time.perf_counter()
        shard.checkpoint()  # the base every later checkpoint builds on
        base_s = time.perf_counter() - t0
        phases = []
        for n, every in enumerate((10**9, 2_000, 10**9, 2_000)):
            shard.settings = ShardSettings(state=_state(tmp, every))
            shard.checkpoint_times.clear()
            out = _phase(shard, users, requests, (n + 1) * 1_000_000)
            out["checkpoints"] = every < 10**9
            out["writes"] = [
                {"kind": k, "seconds": round(s, 4), "bytes": b}
                for k, s, b in shard.checkpoint_times
            ]
            phases.append(out)
        stored = shard.store.load(shard.name)
        t0 = time.perf_counter()
        restarted = UserShard(0, 1, {"state": _state(tmp, 2_000)}, None)
        restart_s = time.perf_counter() - t0
        assert len(restarted.users) == users and restarted.seq == shard.seq
    off = [p for p in phases if not p["checkpoints"]]
    on = [p for p in phases if p["checkpoints"]]
    return {
        "users": users,
        "events_per_user": events,
        "state_bytes_in_memory": shard.users.state_nbytes(),
        "full_checkpoint_s": base_s,
        "phases": phases,
        "added_p99_ms": [b["p99_ms"] - a["p99_ms"] for a, b in zip(off, on, strict=True)],
        "worst_capture_ms": max(p["capture_requests"].get("max_ms", 0.0) for p in on),
        "worst_request_ms": {
            "off": max(p["max_ms"] for p in off),
            "on": max(p["max_ms"] for p in on),
        },
        "restart": {
            "deltas": len(stored.deltas),
            "log_records": len(stored.log),
            "restart_to_serving_s": restart_s,
        },
    }


def _row(phase: dict[str, Any]) -> tuple[float, float, float]:
    return round(phase["p50_ms"], 3), round(phase["p99_ms"], 3), round(phase["max_ms"], 1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", default="100000,1000000", help="comma-separated shard sizes")
    ap.add_argument("--events", type=int, default=72, help="kept events per card")
    ap.add_argument("--requests", type=int, default=10_000, help="per phase")
    args = ap.parse_args(argv)
    results = []
    for users in (int(u) for u in args.users.split(",")):
        r = run_size(users, args.events, args.requests)
        results.append(r)
        on = [_row(p) for p in r["phases"] if p["checkpoints"]]
        off = [_row(p) for p in r["phases"] if not p["checkpoints"]]
        print(
            f"{users:,} cards ({r['state_bytes_in_memory'] / 1e6:,.0f} MB): p50/p99/max ms "
            f"off {off} on {on}; "
            f"worst capture {r['worst_capture_ms']:.2f} ms; "
            f"writer {[(w['kind'], w['seconds']) for p in r['phases'] for w in p['writes']]} s; "
            f"restart to serving {r['restart']['restart_to_serving_s']:.2f} s "
            f"({r['restart']['deltas']} deltas, {r['restart']['log_records']} records)"
        )
    save("checkpoints", {"results": results})


if __name__ == "__main__":
    main()
