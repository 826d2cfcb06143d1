"""Card state per user at scale: N simulated cards with the handbook's activity level.

Each card gets ~1.95 transactions per day (the handbook's 1.75M over 5,000 cards x 183 days)
for `--days` days through the engine's own `UserStore.update` (the kernel the shards run);
reports state bytes per card (the whole arena, spare room included, plus per-card scalars),
the same split by use (events kept, ring slots, freed blocks, spare room), the id index, the
process's RSS growth, and the snapshot's size.
Run: python -m benchmarks memory [--users 1000000] [--days 31].
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import sys
import time

import numpy as np
import psutil

from actors import records
from benchmarks.common import save
from features.config import EngineConfig
from features.spec import MS_PER_DAY
from features.state import UserStore

DAY_MS = MS_PER_DAY
TX_PER_DAY = 1.95


def _one_day(store: UserStore, slots: np.ndarray, rng: np.random.Generator, t_day: int) -> int:
    """A day of transactions for every card, in event-time order, as a stream would be."""
    n = rng.poisson(TX_PER_DAY, len(slots))
    who = np.repeat(np.arange(len(slots)), n)
    times = t_day + rng.integers(0, DAY_MS, len(who))
    order = np.argsort(times, kind="stable")
    who, times = who[order], times[order]
    amounts = np.round(rng.gamma(2.0, 30.0, len(who)), 2)
    terminals = rng.integers(0, 2**31 - 1, len(who)).astype(np.int32)
    store.update(slots[who], times.astype(np.int64), amounts, terminals)
    return len(who)


def _resident_bytes() -> int:
    """RSS after returning freed heap pages to the OS, so the day's temporaries don't count."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return psutil.Process().memory_info().rss


def run(users: int, days: int, seed: int = 5) -> dict[str, float]:
    rss0 = _resident_bytes()
    store = UserStore(EngineConfig().user_capacity)
    ids = [f"card-{i:09d}" for i in range(users)]
    t0 = time.perf_counter()
    slots = store.slots_for(ids)
    rng = np.random.default_rng(seed)
    start = 1_525_000_000_000
    events = sum(_one_day(store, slots, rng, start + day * DAY_MS) for day in range(days))
    seconds = time.perf_counter() - t0
    rss = _resident_bytes() - rss0
    state = store.state_nbytes()
    usage = store.arena_usage()
    event_bytes = sum(a.dtype.itemsize for a in store.events.values())
    scalar_bytes = sum(a.dtype.itemsize for a in store.scalars.values())
    snapshot = len(records.encode(store.capture(full=True)))
    index = sys.getsizeof(store.index) + sum(sys.getsizeof(k) for k in ids)
    return {
        "users": users,
        "days": days,
        "events": events,
        "seconds": seconds,
        "state_bytes_per_user": state / users,
        "scalar_bytes_per_user": scalar_bytes,
        "event_bytes": event_bytes,
        **{f"{k}_per_user": v / users for k, v in usage.items()},
        "ring_bytes_per_user": (usage["ring_slots"] * event_bytes) / users + scalar_bytes,
        "index_bytes_per_user": index / users,
        "rss_growth_bytes_per_user": rss / users,
        "snapshot_bytes_per_user": snapshot / users,
        "overflow_events": store.overflow_total,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks memory")
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=31, help="31: every 30-day window is full")
    args = ap.parse_args(argv)
    out = run(args.users, args.days)
    print(
        f"{out['users']:,} cards, {out['events']:,} events in {out['seconds']:.0f} s: state "
        f"{out['state_bytes_per_user']:,.0f} B/card (arena with spare room + scalars), of which"
        f" rings + scalars {out['ring_bytes_per_user']:,.0f} B (slots per card: "
        f"{out['ring_slots_per_user']:.1f} in rings, {out['events_kept_per_user']:.1f} events,"
        f" {out['free_slots_per_user']:.1f} freed, {out['spare_slots_per_user']:.1f} spare); "
        f"index {out['index_bytes_per_user']:,.0f} B; RSS growth "
        f"{out['rss_growth_bytes_per_user']:,.0f} B/card; snapshot "
        f"{out['snapshot_bytes_per_user']:,.0f} B/card"
    )
    save("memory", out)


if __name__ == "__main__":
    main()
