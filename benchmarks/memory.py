"""Card state per user at scale, and terminal state per busy and per quiet terminal.

Cards: N simulated cards with the handbook's activity level.

Each card gets ~1.95 transactions per day (the handbook's 1.75M over 5,000 cards x 183 days)
for `--days` days through the engine's own `UserStore.update` (the kernel the shards run);
reports state bytes per card (the whole arena, spare room included, plus per-card scalars),
the same split by use (events kept, ring slots, freed blocks, spare room), the id index, the
process's RSS growth, and the snapshot's size. Then 99% of the cards go quiet for 38 days:
the state per card once the sweep has given their events back and the arena is compacted.
Terminals: one merchant's terminal taking `--busy-per-day` transactions a day (10,000)
beside `--quiet-terminals` terminals at the handbook's ~3 a day, for 38 days (the 30-day
windows plus the label delay) with 0.2 % labelled fraud a week later, through
`TerminalStore.step`: bytes of the busy ring and per quiet terminal, events dropped (none
at the default capacity), and the step's time per transaction, busy and quiet.
Links: a shared IP address taking `--busy-per-day` transactions a day from 5,000 cards
beside `--quiet-terminals` devices at ~3 a day from one or two cards, for 31 days, through
`LinkStore.step`: the same measures (`--links-only` runs just this part).
Run: python -m benchmarks memory [--users 1000000] [--days 31] [--busy-per-day 10000]
[--links-only].
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import sys
import time
from typing import Any

import numpy as np
import psutil

from actors.store import records
from benchmarks.common import save
from features.config import EngineConfig
from features.spec import MS_PER_DAY
from features.state import LinkStore, RingStore, TerminalStore, UserStore

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


def run(users: int, days: int, seed: int = 5) -> dict[str, Any]:
    rss0 = _resident_bytes()
    config = EngineConfig()
    store = UserStore(config.user_capacity, lateness_ms=config.lateness_ms)
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
    # Then all but 1% of the cards go quiet for 38 days (their 30-day windows plus the
    # engine's lateness): the sweep gives their events back; compaction returns the slots.
    active = slots[: max(1, users // 100)]
    quiet_start = start + days * DAY_MS
    for day in range(38):
        _one_day(store, active, rng, quiet_start + day * DAY_MS)
    store.compact()
    quiet_rows = np.asarray(slots[len(active) :])
    quiet_events = int(store.scalars["length"][quiet_rows].sum())
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
        "after_quiet_38_days": {
            "state_bytes_per_user": store.state_nbytes() / users,
            "events_kept_by_quiet_cards": quiet_events,
            "scalar_bytes_per_user": scalar_bytes,
        },
    }


def terminals(per_day: int, quiet: int, days: int = 38, seed: int = 7) -> dict[str, Any]:
    """One busy terminal beside many quiet ones: bytes per ring and time per step."""
    config = EngineConfig()
    store = TerminalStore(config.terminal_capacity, config.label_delay_ms, lateness_ms=None)
    rng = np.random.default_rng(seed)
    start = 1_525_000_000_000
    busy = np.full(per_day * days, 0)
    calm = rng.integers(1, quiet + 1, int(3 * quiet * days))
    who = np.concatenate([busy, calm])
    times = start + rng.integers(0, days * DAY_MS, len(who))
    keys = np.arange(len(who), dtype=np.int64)
    fraud = rng.random(len(who)) < 0.002
    kinds = np.concatenate([np.zeros(len(who), np.int8), np.ones(int(fraud.sum()), np.int8)])
    ev_times = np.concatenate([times, times[fraud] + config.label_delay_ms])
    ev_who = np.concatenate([who, who[fraud]])
    order = np.lexsort((kinds == 0, ev_times))
    slots = store.slots_for([f"t{i}" for i in range(quiet + 1)])[ev_who[order]]
    ev_keys = np.concatenate([keys, keys[fraud]])[order]
    is_busy = ev_who[order] == 0
    seconds = {}
    for name, part in (("busy", is_busy), ("quiet", ~is_busy)):
        t0 = time.perf_counter()
        store.step(kinds[order][part], slots[part], ev_times[order][part], ev_keys[part],
                   kinds[order][part])  # fmt: skip
        seconds[name] = time.perf_counter() - t0
    out = {"busy_per_day": per_day, "quiet_terminals": quiet, "days": days}
    return {**out, **_ring_measures(store, quiet, is_busy, seconds, "terminal")}


def _ring_measures(
    store: RingStore, quiet: int, is_busy: np.ndarray, seconds: dict[str, float], what: str
) -> dict[str, Any]:
    """Row 0 is the busy one, rows 1..quiet the quiet ones: their rings' bytes and events,
    and the step's time per event of each."""
    event_bytes = sum(a.dtype.itemsize for a in store.events.values())
    scalar_bytes = sum(a.dtype.itemsize for a in store.scalars.values())
    caps = store.scalars["cap"][: quiet + 1].astype(np.int64)
    kept = store.scalars["length"][: quiet + 1].astype(np.int64)
    n_busy = int(is_busy.sum())
    return {
        "busy_events_kept": int(kept[0]),
        "busy_ring_bytes": int(caps[0]) * event_bytes + scalar_bytes,
        f"quiet_ring_bytes_per_{what}": float(caps[1:].mean()) * event_bytes + scalar_bytes,
        f"quiet_events_kept_per_{what}": float(kept[1:].mean()),
        "event_bytes": event_bytes,
        "overflow_events": store.overflow_total,
        "busy_us_per_event": seconds["busy"] / n_busy * 1e6,
        "quiet_us_per_event": seconds["quiet"] / (len(is_busy) - n_busy) * 1e6,
    }


def links(per_day: int, quiet: int, days: int = 31, seed: int = 9) -> dict[str, Any]:
    """One busy shared IP address beside many quiet devices: bytes per ring, time per step."""
    store = LinkStore(EngineConfig().link_capacity, lateness_ms=None)
    rng = np.random.default_rng(seed)
    start = 1_525_000_000_000
    who = np.concatenate([np.zeros(per_day * days, np.int64),
                          rng.integers(1, quiet + 1, 3 * quiet * days)])  # fmt: skip
    cards = np.where(who == 0, rng.integers(0, 5_000, len(who)), who * 2 + rng.integers(0, 2))
    times = start + rng.integers(0, days * DAY_MS, len(who))
    order = np.argsort(times, kind="stable")
    slots = store.slots_for([f"l{i}" for i in range(quiet + 1)])[who[order]]
    is_busy = who[order] == 0
    keys = np.arange(len(who), dtype=np.int64)
    seconds = {}
    for name, part in (("busy", is_busy), ("quiet", ~is_busy)):
        t0 = time.perf_counter()
        store.step(slots[part], times[order][part], cards[order][part].astype(np.int32),
                   keys[part], np.zeros(int(part.sum()), np.bool_))  # fmt: skip
        seconds[name] = time.perf_counter() - t0
    out = {"busy_per_day": per_day, "quiet_links": quiet, "days": days}
    return {**out, **_ring_measures(store, quiet, is_busy, seconds, "link")}


def _print_links(link: dict[str, Any]) -> None:
    print(
        f"links: a shared IP at {link['busy_per_day']:,}/day keeps "
        f"{link['busy_events_kept']:,} events in {link['busy_ring_bytes'] / 1e6:,.1f} MB "
        f"({link['event_bytes']} B/event), {link['busy_us_per_event']:.2f} us per event; a "
        f"quiet device {link['quiet_ring_bytes_per_link']:,.0f} B "
        f"({link['quiet_events_kept_per_link']:.0f} events), "
        f"{link['quiet_us_per_event']:.2f} us per event; {link['overflow_events']} dropped"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks memory")
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=31, help="31: every 30-day window is full")
    ap.add_argument("--busy-per-day", type=int, default=10_000)
    ap.add_argument("--quiet-terminals", type=int, default=10_000)
    ap.add_argument("--links-only", action="store_true", help="only the link stores' part")
    args = ap.parse_args(argv)
    if args.links_only:
        link = links(args.busy_per_day, args.quiet_terminals)
        _print_links(link)
        save("memory-links", {"links": link})
        return
    out = run(args.users, args.days)
    print(
        f"{out['users']:,} cards, {out['events']:,} events in {out['seconds']:.0f} s: state "
        f"{out['state_bytes_per_user']:,.0f} B/card (arena with spare room + scalars), of which"
        f" rings + scalars {out['ring_bytes_per_user']:,.0f} B (slots per card: "
        f"{out['ring_slots_per_user']:.1f} in rings, {out['events_kept_per_user']:.1f} events,"
        f" {out['free_slots_per_user']:.1f} freed, {out['spare_slots_per_user']:.1f} spare); "
        f"index {out['index_bytes_per_user']:,.0f} B; RSS growth "
        f"{out['rss_growth_bytes_per_user']:,.0f} B/card; snapshot "
        f"{out['snapshot_bytes_per_user']:,.0f} B/card; after 38 days with 99% of cards "
        f"quiet: {out['after_quiet_38_days']['state_bytes_per_user']:,.0f} B/card "
        f"({out['after_quiet_38_days']['events_kept_by_quiet_cards']} events kept by quiet cards)"
    )
    term = out["terminals"] = terminals(args.busy_per_day, args.quiet_terminals)
    print(
        f"terminals: a busy one at {term['busy_per_day']:,}/day keeps "
        f"{term['busy_events_kept']:,} events in {term['busy_ring_bytes'] / 1e6:,.1f} MB "
        f"({term['event_bytes']} B/event), {term['busy_us_per_event']:.2f} us per event; a "
        f"quiet one {term['quiet_ring_bytes_per_terminal']:,.0f} B "
        f"({term['quiet_events_kept_per_terminal']:.0f} events), "
        f"{term['quiet_us_per_event']:.2f} us per event; {term['overflow_events']} dropped"
    )
    link = out["links"] = links(args.busy_per_day, args.quiet_terminals)
    _print_links(link)
    save("memory", out)


if __name__ == "__main__":
    main()
