"""Terminals kept in time order with running fraud counts: the same windows as a walk over
every kept event, for a quiet terminal and for a merchant's terminal of 10,000 transactions
a day (nothing dropped, windows exact), across out-of-order events, deliveries again,
labels set and reset, and a checkpoint round trip."""

from __future__ import annotations

import numpy as np

from features.config import EngineConfig
from features.kernels import READ, WINDOW_LONG, WINDOW_MID, WINDOW_SHORT
from features.spec import MS_PER_DAY, TERMINAL_WIDTH, slot
from features.state import TerminalStore

DELAY = 7 * MS_PER_DAY
T0 = 1_700_000_000_000
TX, LABEL = 0, 1
COLUMNS = [
    (slot(f"terminal_tx_count_{n}d"), slot(f"terminal_risk_{n}d"), w)
    for n, w in ((1, WINDOW_SHORT), (7, WINDOW_MID), (30, WINDOW_LONG))
]
LAST = slot("terminal_last_label")


class Reference:
    """What the windows mean, by walking every kept event of a terminal (plain Python)."""

    def __init__(self) -> None:
        self.kept: dict[int, list[list[int]]] = {}  # terminal -> [time, key, label]

    def step(
        self, kind: int, terminal: int, t: int, key: int, label: int
    ) -> tuple[list[float], bool]:
        events = self.kept.setdefault(terminal, [])
        if kind == LABEL:
            hits = [e for e in events if e[1] == key]
            for e in hits:
                e[2] = label
            return [0.0] * TERMINAL_WIDTH, bool(hits)
        if kind == TX:
            events[:] = [e for e in events if e[0] > t - WINDOW_LONG - DELAY]
        upper = t - DELAY
        out = [0.0] * TERMINAL_WIDTH
        for count, risk, window in COLUMNS:
            inside = [e for e in events if upper - window < e[0] <= upper]
            out[count] = len(inside)
            out[risk] = sum(e[2] for e in inside) / len(inside) if inside else 0.0
        inside = [e for e in events if upper - WINDOW_LONG < e[0] <= upper]
        if inside:
            newest = max(e[0] for e in inside)
            out[LAST] = max(e[2] for e in inside if e[0] == newest)
        held = any(e[1] == key and e[0] == t for e in events)
        if kind == TX and not held:
            events.append([t, key, 0])
        return out, held


def _mixed_stream(n: int, seed: int) -> list[tuple[int, int, int, int, int]]:
    """(kind, terminal, time, key, label): transactions mostly in time order with some up
    to two days late, ties, deliveries again, labels (set, reset, repeated), reads."""
    rng = np.random.default_rng(seed)
    clock, out, sent = T0, [], []
    for i in range(n):
        r = rng.random()
        terminal = int(rng.integers(0, 3))
        if r < 0.12 and sent:
            k = int(rng.integers(0, len(sent)))
            out.append((LABEL, sent[k][0], 0, sent[k][2], int(rng.random() < 0.7)))
        elif r < 0.16 and sent:
            out.append((TX, *sent[int(rng.integers(0, len(sent)))], 0))  # delivered again
        elif r < 0.20:
            out.append((READ, terminal, clock + int(rng.integers(0, MS_PER_DAY)), 0, 0))
        else:
            clock += int(rng.exponential(3 * 3_600_000))
            late = int(rng.integers(0, 2 * MS_PER_DAY)) if rng.random() < 0.1 else 0
            t = clock - late - (clock - late) % 60_000 * int(rng.random() < 0.3)  # some ties
            sent.append((terminal, t, 10_000 + i))
            out.append((TX, terminal, t, 10_000 + i, 0))
    return out


def _run(
    store: TerminalStore, events: list[tuple[int, int, int, int, int]]
) -> tuple[np.ndarray, np.ndarray]:
    kinds, terminals, times, keys, labels = (np.array(c) for c in zip(*events, strict=True))
    slots = store.slots_for([f"k{t}" for t in terminals])
    out = np.zeros((len(events), TERMINAL_WIDTH))
    found = np.zeros(len(events), bool)
    reads = kinds == READ
    # reads go through `read`, one at a time, between the steps around them
    start = 0
    for i in [*np.flatnonzero(reads), len(events)]:
        if i > start:
            part = slice(start, i)
            out[part], found[part] = store.step(
                kinds[part].astype(np.int8), slots[part], times[part], keys[part],
                labels[part].astype(np.int8),
            )  # fmt: skip
        if i < len(events):
            out[i] = store.read([f"k{terminals[i]}"], times[i : i + 1])[0]
        start = i + 1
    return out, found


def test_windows_equal_a_walk_over_every_kept_event() -> None:
    events = _mixed_stream(4_000, seed=5)
    ref = Reference()
    want = [ref.step(*e) for e in events]
    store = TerminalStore(100_000, DELAY)
    got, found = _run(store, events)
    np.testing.assert_array_equal(got, np.array([w[0] for w in want]))
    is_step = np.array([e[0] != READ for e in events])
    np.testing.assert_array_equal(found[is_step], np.array([w[1] for w in want])[is_step])
    assert store.overflow_total == 0
    assert (got[:, COLUMNS[2][0]] > 0).mean() > 0.5 and got[:, COLUMNS[2][1]].max() > 0


def test_a_checkpoint_continues_identically_and_recounts_the_frauds() -> None:
    events = _mixed_stream(3_000, seed=6)
    whole = TerminalStore(100_000, DELAY)
    want, _ = _run(whole, events)
    first = TerminalStore(100_000, DELAY)
    _run(first, events[:1_700])
    restored = TerminalStore.from_form(first.capture(True), 100_000, DELAY)
    got, _ = _run(restored, events[1_700:])
    np.testing.assert_array_equal(got, want[1_700:])


def test_a_checkpoint_in_arrival_order_is_put_in_time_order() -> None:
    """Checkpoints written before terminals were kept in time order hold arrival order."""
    store = TerminalStore(64, DELAY)
    times = np.array([T0 + 5, T0 + 1, T0 + 3], np.int64)
    store.step(
        np.zeros(3, np.int8), store.slots_for(["k"] * 3), times, np.arange(3), np.zeros(3, np.int8)
    )
    form = store.capture(True)
    form["events"] = {c: v[[2, 0, 1]] for c, v in form["events"].items()}  # scrambled
    restored = TerminalStore.from_form(form, 128, DELAY)  # a larger capacity is fine
    assert restored.capture(True)["events"]["time"].tolist() == sorted(times.tolist())


def test_a_merchant_terminal_of_ten_thousand_a_day_keeps_every_event() -> None:
    """38 days at 10,000 transactions a day on one terminal, 0.2 % labelled fraud a week
    later: the default capacity drops nothing and the windows count exactly."""
    config = EngineConfig()
    per_day, days = 10_000, 38
    n = per_day * days
    rng = np.random.default_rng(1)
    times = T0 + np.sort(rng.integers(0, days * MS_PER_DAY, n))
    keys = np.arange(n, dtype=np.int64)
    fraud = rng.random(n) < 0.002
    label_times = times[fraud] + DELAY
    kinds = np.concatenate([np.zeros(n, np.int8), np.ones(int(fraud.sum()), np.int8)])
    ev_times = np.concatenate([times, label_times])
    ev_keys = np.concatenate([keys, keys[fraud]])
    order = np.lexsort((kinds == TX, ev_times))  # labels first on ties, as offline
    store = TerminalStore(config.terminal_capacity, config.label_delay_ms)
    slots = store.slots_for(["merchant"] * len(order))
    out, _ = store.step(
        kinds[order], slots, ev_times[order], ev_keys[order], kinds[order].astype(np.int8)
    )
    assert store.overflow_total == 0
    tx_out = np.empty((n, TERMINAL_WIDTH))
    is_tx = kinds[order] == TX
    tx_out[order[is_tx]] = out[is_tx]  # transactions come first in `kinds`: index = row
    # check the last day's transactions against counts over the sorted times
    for i in range(n - 2_000, n, 97):
        upper = times[i] - DELAY
        for count, risk, window in COLUMNS:
            lo = np.searchsorted(times[:i], upper - window, side="right")
            hi = np.searchsorted(times[:i], upper, side="right")
            labelled = fraud[lo:hi] & (label_times_of(times, fraud)[lo:hi] <= times[i])
            assert tx_out[i, count] == hi - lo
            assert tx_out[i, risk] == (labelled.sum() / (hi - lo) if hi > lo else 0.0)
    assert tx_out[n - 1, COLUMNS[2][0]] > 250_000  # 30 days of a busy merchant, all counted


def label_times_of(times: np.ndarray, fraud: np.ndarray) -> np.ndarray:
    """When each transaction's label is known (never, for a genuine one)."""
    return np.where(fraud, times + DELAY, np.iinfo(np.int64).max)
