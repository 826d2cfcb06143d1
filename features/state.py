"""Per-user and per-terminal state: a ring of recent events per id, in a shared arena.

A store owns the id -> row mapping, the per-row scalars and the arena of event columns (see
`features.kernels` for the layout) and grows them as ids and events arrive. It remembers
which rows changed, so a shard can checkpoint only those: `capture` gives them as plain
arrays, each row's kept events oldest first in absolute units (int64 times, float amounts),
so a capture does not depend on the arena's layout; `merge` folds a capture into an earlier
whole one, and `from_form` restores a store that continues identically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from features import kernels
from features.spec import CARD_WIDTH, LINK_WIDTH, MS_PER_DAY, TERMINAL_WIDTH

_CHUNK_ROWS = 8192  # bounds temporaries when a large shard is snapshotted
# Arena slack as a fraction of the rings (1/16): spare room kept after growing or compacting,
# and the freed blocks tolerated before compacting. Smaller means less memory, more copying.
SLACK_DIVISOR = 16
MAX_CENTS = 2**31 - 1
EVICT_EVERY_MS = 86_400_000  # quiet rows are swept once per day of event time
NO_TIME = int(kernels.NO_TIME)


def _ranks(length: np.ndarray) -> np.ndarray:
    """0..length-1 for each row in turn: every kept event's place in its ring, oldest first."""
    length = np.asarray(length, np.int64)
    ranks: np.ndarray = np.arange(int(length.sum())) - np.repeat(np.cumsum(length) - length, length)
    return ranks


class RingStore:
    """Rows of variable-size event rings plus per-row scalars, addressed by string id."""

    event_dtypes: ClassVar[dict[str, type]] = {}
    scalar_dtypes: ClassVar[dict[str, type]] = {}  # kept in snapshots ("length" among them)
    layout_dtypes: ClassVar[dict[str, type]] = {
        "offset": np.int64,
        "cap": np.int32,
        "head": np.int32,
    }
    scalar_fill: ClassVar[dict[str, int]] = {}
    snapshot_columns: ClassVar[tuple[str, ...]] = ()  # `_export`'s names for event columns
    snapshot_dtypes: ClassVar[tuple[type, ...]] = ()  # and their types

    def __init__(
        self, capacity: int, initial_rows: int = 256, lateness_ms: int | None = None
    ) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be at least 2 events, got {capacity}")
        self.capacity = int(capacity)
        # Event time: the newest seen, and when quiet rows were last swept (`_advance`).
        self.lateness_ms = lateness_ms
        self.newest = self.swept_at = NO_TIME
        self.index: dict[str, int] = {}
        self.ids: list[str] = []
        dtypes = {**self.layout_dtypes, **self.scalar_dtypes}
        self.scalars: dict[str, np.ndarray] = {
            k: np.full(initial_rows, self.scalar_fill.get(k, 0), dtype=d) for k, d in dtypes.items()
        }
        self.events: dict[str, np.ndarray] = {
            k: np.empty(max(1024, 8 * initial_rows), d) for k, d in self.event_dtypes.items()
        }
        self.top = np.zeros(1, np.int64)
        self.free_head = np.full(kernels.size_class(self.capacity) + 1, -1, np.int64)
        self.dirty = np.zeros(initial_rows, np.bool_)  # rows changed since the last capture
        self._captured_ids = 0  # ids the last capture covered

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def rows_allocated(self) -> int:
        return int(next(iter(self.scalars.values())).shape[0])

    @property
    def arena_slots(self) -> int:
        return int(next(iter(self.events.values())).shape[0])

    def _grow(self, needed: int) -> None:
        rows = self.rows_allocated
        if needed <= rows:
            return
        new_rows = max(needed, rows * 2)
        for k, arr in self.scalars.items():
            grown = np.full(new_rows, self.scalar_fill.get(k, 0), dtype=arr.dtype)
            grown[:rows] = arr
            self.scalars[k] = grown
        dirty = np.zeros(new_rows, np.bool_)
        dirty[:rows] = self.dirty
        self.dirty = dirty

    def _make_room(self) -> None:
        """Room for at least one more full-size ring: compact when a sixteenth of the rings'
        slots or more could be given back (freed blocks nobody reused, rings with more than
        a step of room), otherwise enlarge the arena by a sixteenth (amortised)."""
        n = len(self)
        cap = self.scalars["cap"][:n]
        rings = int(cap.sum(dtype=np.int64))
        fitted = int(np.minimum(cap, self._fitted_caps(self.scalars["length"][:n])).sum())
        reclaimable = int(self.top[0]) - fitted
        slack = self._slack(cap)
        if reclaimable >= max(rings // SLACK_DIVISOR, slack):
            self.compact()
            return
        used = int(self.top[0])
        size = max(self.arena_slots + self.arena_slots // SLACK_DIVISOR, used + slack)
        for k, arr in self.events.items():
            grown = np.empty(size, arr.dtype)
            grown[:used] = arr[:used]
            self.events[k] = grown

    def _slack(self, cap: np.ndarray) -> int:
        """Spare room an arena keeps: the largest block a kernel may ask for next (the
        biggest ring grown once), and never less than a few small rings."""
        biggest = int(cap.max()) if len(cap) else 0
        return max(16 * kernels.STEP, int(kernels.grown(biggest, self.capacity)))

    def _fitted_caps(self, length: np.ndarray) -> np.ndarray:
        """Ring sizes with one growth step of room above the events kept (none when empty)."""
        step = kernels.STEP
        length = length.astype(np.int64)
        fitted = np.minimum(self.capacity, (length + step - 1) // step * step + step)
        return np.where(length > 0, fitted, 0)

    def compact(self) -> None:
        """Pack every ring end to end (oldest event first) in a fresh arena with a sixteenth of
        spare room, dropping freed blocks and shrinking rings that hold more than a step of
        room (a card whose activity fell gives its slots back)."""
        n = len(self)
        sc = self.scalars
        cap = np.minimum(sc["cap"][:n], self._fitted_caps(sc["length"][:n])).astype(np.int64)
        offset = np.cumsum(cap) - cap
        total = int(cap.sum())
        size = total + total // SLACK_DIVISOR + self._slack(cap)
        fresh = {c: np.empty(size, arr.dtype) for c, arr in self.events.items()}
        for c, arr in self.events.items():
            kernels.pack_rings(
                arr, fresh[c], sc["offset"][:n], sc["cap"][:n], sc["head"][:n],
                sc["length"][:n], offset,
            )  # fmt: skip
        self.events = fresh
        sc["cap"][:n] = cap
        sc["offset"][:n] = offset
        sc["head"][:n] = 0
        self.top[0] = total
        self.free_head[:] = -1

    def _kept_positions(self, chosen: np.ndarray) -> np.ndarray:
        """Arena positions of these rows' kept events, row by row, oldest first."""
        sc = self.scalars
        length = sc["length"][chosen].astype(np.int64)
        rows = np.repeat(chosen, length)
        k = _ranks(length)
        cap = np.maximum(sc["cap"][rows].astype(np.int64), 1)
        positions: np.ndarray = sc["offset"][rows] + (sc["head"][rows] + k) % cap
        return positions

    def _run(self, step: Callable[[int], int], n: int) -> None:
        """Run a kernel over n events, enlarging the arena whenever it stops for room."""
        done = step(0)
        while done < n:
            self._make_room()
            done = step(done)

    def _horizon(self) -> int:
        """How far back from a transaction its windows reach (`features.kernels`)."""
        return int(kernels.WINDOW_LONG)

    def _bases(self, n: int) -> np.ndarray:
        """Each row's time base (event times are kept as offsets from it)."""
        return np.zeros(n, np.int64)

    def _advance(self, times: np.ndarray) -> None:
        """Note the newest event time; once per day of it, expire every row as a
        transaction `lateness_ms` behind the newest would expire its own. Quiet ids give
        their events back; the scalars (totals, last time) stay, and compaction returns
        the slots when the arena next needs room. A transaction no later than that sees
        the same windows as without the sweep, so online and offline agree."""
        if self.lateness_ms is None or not len(times):
            return
        self.newest = max(self.newest, int(np.max(times)))
        if self.newest - self.swept_at < EVICT_EVERY_MS:
            return
        self.swept_at = self.newest
        n, sc = len(self), self.scalars
        kernels.expire_rows(
            self.events["time"], self._bases(n), sc["offset"], sc["cap"], sc["head"],
            sc["length"], n, self.newest - self.lateness_ms - self._horizon(), self.dirty,
        )  # fmt: skip

    def slots_for(self, ids: Sequence[str]) -> np.ndarray:
        """Rows for these ids, creating rows for ids never seen before."""
        out = np.empty(len(ids), dtype=np.int64)
        index = self.index
        for i, key in enumerate(ids):
            slot = index.get(key)
            if slot is None:
                slot = len(self.ids)
                index[key] = slot
                self.ids.append(key)
            out[i] = slot
        self._grow(len(self.ids))
        return out

    @property
    def overflow_total(self) -> int:
        """Events not kept: dropped because a ring was full at its capacity (windows then
        undercount) or, for cards, because they were too far out of time order."""
        return int(self.scalars["overflow"][: len(self)].sum())

    def _event_bytes(self) -> int:
        return sum(np.dtype(d).itemsize for d in self.event_dtypes.values())

    def state_nbytes(self) -> int:
        """Bytes of state held: the whole arena (rings, freed blocks and spare room) plus the
        scalars of the ids in use (excluding the id index)."""
        per_row = sum(a.dtype.itemsize for a in self.scalars.values())
        return self.arena_slots * self._event_bytes() + len(self) * per_row

    def arena_usage(self) -> dict[str, int]:
        """Arena slots by use: events kept, slots in rings, freed blocks, never used yet."""
        n = len(self)
        in_rings = int(self.scalars["cap"][:n].sum(dtype=np.int64))
        return {
            "events_kept": int(self.scalars["length"][:n].sum(dtype=np.int64)),
            "ring_slots": in_rings,
            "free_slots": int(self.top[0]) - in_rings,
            "spare_slots": self.arena_slots - int(self.top[0]),
        }

    # -- checkpoints ---------------------------------------------------------------------------
    def _export(self, rows: np.ndarray, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Kept events of `rows` (one entry per event) in checkpoint units."""
        return cols

    def _import(
        self, rows: np.ndarray, cols: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Checkpoint columns back into arena units: which events to keep, and their values."""
        return np.ones(len(rows), np.bool_), cols

    def capture(self, full: bool) -> dict[str, Any]:
        """The rows changed since the last capture (every row when `full`), as plain arrays:
        ids added since, each row's scalars, and its kept events oldest first in absolute
        units, so the form does not depend on the arena's layout; a delta names its `rows`
        (a whole capture holds every row, in order). Costs what it holds."""
        n = len(self)
        first = 0 if full else min(self._captured_ids, n)
        rows = np.arange(n) if full else np.flatnonzero(self.dirty[:n])
        sc = self.scalars
        parts: dict[str, list[np.ndarray]] = {c: [] for c in self.snapshot_columns}
        for a in range(0, len(rows), _CHUNK_ROWS):  # bounds temporaries on a large store
            chunk = rows[a : a + _CHUNK_ROWS]
            idx = self._kept_positions(chunk)
            owners = np.repeat(chunk, sc["length"][chunk])
            cols = self._export(owners, {c: arr[idx] for c, arr in self.events.items()})
            cols = {c: cols[c] for c in self.snapshot_columns}  # derived columns stay out
            for c, v in cols.items():
                parts[c].append(v)
        self.dirty[:n] = False
        self._captured_ids = n
        return {
            "capacity": self.capacity,
            "clock": [self.newest, self.swept_at],
            "n": n,
            "first": first,
            "ids": self.ids[first:n],
            **({} if full else {"rows": rows.astype(np.int64)}),
            "scalars": {k: sc[k][rows] for k in self.scalar_dtypes},
            "events": {
                c: np.concatenate(v) if v else np.empty(0, d)
                for (c, v), d in zip(parts.items(), self.snapshot_dtypes, strict=True)
            },
        }

    @classmethod
    def merge(cls, base: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
        """A whole capture with a later one's changes applied: what `capture(full=True)`
        would have returned at the later one (pure; checkpoints are folded with it)."""
        nb, n = int(base["n"]), int(delta["n"])
        if int(base["first"]) != 0 or int(delta["first"]) != nb:
            raise ValueError(f"captures out of order: ids {delta['first']}.. after {nb}")
        rows = np.asarray(delta["rows"], np.int64)
        scalars: dict[str, np.ndarray] = {}
        for k, d in cls.scalar_dtypes.items():
            merged: np.ndarray = np.full(n, cls.scalar_fill.get(k, 0), dtype=d)
            merged[:nb] = base["scalars"][k]
            merged[rows] = delta["scalars"][k]
            scalars[k] = merged
        base_len = np.zeros(n, np.int64)
        base_len[:nb] = base["scalars"]["length"]
        delta_len = np.asarray(delta["scalars"]["length"], np.int64)
        length = scalars["length"].astype(np.int64)
        changed = np.full(n, -1, np.int64)
        changed[rows] = np.arange(len(rows))
        owners = np.repeat(np.arange(n), length)
        rank = _ranks(length)
        take = changed[owners]  # the changed row's place in the delta, -1 if unchanged
        from_delta = take >= 0
        base_at = (np.cumsum(base_len) - base_len)[owners[~from_delta]] + rank[~from_delta]
        delta_at = (np.cumsum(delta_len) - delta_len)[take[from_delta]] + rank[from_delta]
        events: dict[str, np.ndarray] = {}
        for c, column in base["events"].items():
            out = np.empty(len(owners), np.asarray(column).dtype)
            out[~from_delta] = np.asarray(column)[base_at]
            out[from_delta] = np.asarray(delta["events"][c])[delta_at]
            events[c] = out
        return {
            "capacity": delta["capacity"], "clock": delta["clock"], "n": n, "first": 0,
            "ids": [*base["ids"], *delta["ids"]], "scalars": scalars, "events": events,
        }  # fmt: skip

    @staticmethod
    def select(form: dict[str, Any], keep: np.ndarray) -> dict[str, Any]:
        """The rows of a whole capture where `keep` is true (moving key groups)."""
        keep = np.asarray(keep, np.bool_)
        length = np.asarray(form["scalars"]["length"], np.int64)
        events_kept = np.repeat(keep, length)
        ids = [i for i, k in zip(form["ids"], keep.tolist(), strict=True) if k]
        return {
            "capacity": form["capacity"], "clock": form["clock"], "n": len(ids), "first": 0,
            "ids": ids,
            "scalars": {k: np.asarray(v)[keep] for k, v in form["scalars"].items()},
            "events": {c: np.asarray(v)[events_kept] for c, v in form["events"].items()},
        }  # fmt: skip

    @classmethod
    def concat(cls, forms: list[dict[str, Any]], capacity: int) -> dict[str, Any]:
        """One whole capture of the rows of several (their ids are distinct)."""
        ids = [i for f in forms for i in f["ids"]]
        dtypes = {c: d for c, d in zip(cls.snapshot_columns, cls.snapshot_dtypes, strict=True)}
        clocks = [f["clock"] for f in forms] or [[NO_TIME, NO_TIME]]
        return {
            "capacity": capacity, "clock": [max(c[0] for c in clocks), max(c[1] for c in clocks)],
            "n": len(ids), "first": 0, "ids": ids,
            "scalars": {
                k: np.concatenate([np.empty(0, d), *(f["scalars"][k] for f in forms)]).astype(d)
                for k, d in cls.scalar_dtypes.items()
            },
            "events": {
                c: np.concatenate([np.empty(0, d), *(f["events"][c] for f in forms)]).astype(d)
                for c, d in dtypes.items()
            },
        }  # fmt: skip

    @classmethod
    def _restore(cls, store: RingStore, form: dict[str, Any]) -> None:
        """Fill an empty store from a whole capture: rings packed end to end, sized as
        compaction sizes them."""
        if int(form["capacity"]) > store.capacity:  # a larger one: rings just grow further
            raise ValueError(
                f"checkpoint capacity {form['capacity']} > configured {store.capacity}: "
                "restoring would drop kept events"
            )
        if int(form["first"]) != 0 or len(form["ids"]) != int(form["n"]):
            raise ValueError("a store is restored from a whole capture, not a delta")
        store.newest, store.swept_at = (int(t) for t in form["clock"])
        store.ids = list(form["ids"])
        store.index = {k: i for i, k in enumerate(store.ids)}
        n = len(store.ids)
        store._grow(n)
        for k in store.scalar_dtypes:
            store.scalars[k][:n] = form["scalars"][k]
        length = store.scalars["length"][:n].astype(np.int64)
        rows = np.repeat(np.arange(n), length)
        keep, cols = store._import(rows, {c: form["events"][c] for c in store.snapshot_columns})
        if not keep.all():
            rows = rows[keep]
            cols = {c: v[keep] for c, v in cols.items()}
            kept = np.bincount(rows, minlength=n)
            store.scalars["overflow"][:n] += (length - kept).astype(np.int32)
            length = kept
            store.scalars["length"][:n] = length
        cap = store._fitted_caps(length)
        offset = np.cumsum(cap) - cap
        store.scalars["cap"][:n] = cap
        store.scalars["offset"][:n] = offset
        store.scalars["head"][:n] = 0
        total = int(cap.sum())
        size = max(1024, total + total // SLACK_DIVISOR + store._slack(cap))
        store.events = {c: np.empty(size, d) for c, d in store.event_dtypes.items()}
        store.top[0] = total
        pos = offset[rows] + _ranks(length)
        for c, v in cols.items():
            store.events[c][pos] = v
        store.dirty[:n] = False
        store._captured_ids = n


class UserStore(RingStore):
    """Each card's recent transactions (time, amount, terminal) and lifetime totals.

    An event is 12 bytes: its time as a 32-bit offset from the card's `base` (ms), its amount
    in integer cents and the 32-bit terminal identity.
    """

    event_dtypes: ClassVar[dict[str, type]] = {
        "time": np.uint32,
        "cents": np.int32,
        "term": np.int32,
    }
    layout_dtypes: ClassVar[dict[str, type]] = {**RingStore.layout_dtypes, "base": np.int64}
    snapshot_columns: ClassVar[tuple[str, ...]] = ("time", "amount", "term")
    snapshot_dtypes: ClassVar[tuple[type, ...]] = (np.int64, np.float64, np.int32)
    scalar_dtypes: ClassVar[dict[str, type]] = {
        "length": np.int32,
        "count_total": np.int64,
        "sum_total": np.float64,
        "last_time": np.int64,
        "overflow": np.int32,
    }
    scalar_fill: ClassVar[dict[str, int]] = {"last_time": int(kernels.NO_TIME)}

    def update(
        self,
        slots: np.ndarray,
        times_ms: np.ndarray,
        amounts: np.ndarray,
        terminal_hashes: np.ndarray,
    ) -> np.ndarray:
        """Features for each transaction, in order; each is then added to its user's history."""
        n = len(slots)
        out = np.empty((n, CARD_WIDTH), dtype=np.float64)
        amounts = np.ascontiguousarray(amounts, dtype=np.float64)
        cents = to_cents(amounts)
        slots = np.ascontiguousarray(slots, dtype=np.int64)
        times_ms = np.ascontiguousarray(times_ms, dtype=np.int64)
        terminal_hashes = np.ascontiguousarray(terminal_hashes, dtype=np.int32)
        s = self.scalars
        self.dirty[slots] = True

        def step(start: int) -> int:
            e = self.events
            return int(kernels.user_step(
                e["time"], e["cents"], e["term"], self.free_head, self.top,
                s["offset"], s["cap"], s["head"], s["length"], s["base"],
                s["count_total"], s["sum_total"], s["last_time"], s["overflow"],
                self.capacity, slots, times_ms, amounts, cents, terminal_hashes, out, start,
            ))  # fmt: skip

        self._run(step, n)
        self._advance(times_ms)
        return out

    def _bases(self, n: int) -> np.ndarray:
        bases: np.ndarray = self.scalars["base"][:n]
        return bases

    def _export(self, rows: np.ndarray, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {
            "time": self.scalars["base"][rows] + cols["time"].astype(np.int64),
            "amount": cols["cents"] / 100.0,
            "term": cols["term"],
        }

    def _import(
        self, rows: np.ndarray, cols: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        times = cols["time"].astype(np.int64)
        n = len(self)
        base = np.zeros(n, np.int64)
        if len(rows):
            lo = np.full(n, np.iinfo(np.int64).max)
            hi = np.full(n, np.iinfo(np.int64).min)
            np.minimum.at(lo, rows, times)
            np.maximum.at(hi, rows, times)
            used = np.bincount(rows, minlength=n) > 0
            base[used] = np.maximum(
                lo[used] - kernels.BASE_MARGIN, hi[used] - kernels.TIME_SPAN + kernels.FUTURE_ROOM
            )
        self.scalars["base"][:n] = base
        keep = times >= base[rows]
        return keep, {
            "time": (times - base[rows]).astype(np.uint32),
            "cents": to_cents(cols["amount"]),
            "term": cols["term"],
        }

    @classmethod
    def from_form(
        cls, form: dict[str, Any], capacity: int, lateness_ms: int | None = None
    ) -> UserStore:
        """The store a whole capture (`capture(full=True)`, `merge`) describes."""
        store = cls(capacity, lateness_ms=lateness_ms)
        cls._restore(store, form)
        return store


def to_cents(amounts: np.ndarray) -> np.ndarray:
    """Amounts as int32 cents, as card history keeps them; refuses what does not fit."""
    cents = np.rint(np.asarray(amounts, dtype=np.float64) * 100.0)
    if len(cents) and not (np.abs(cents) <= MAX_CENTS).all():
        raise ValueError(f"amount must be within +/-{MAX_CENTS / 100:,.2f}")
    return cents.astype(np.int32)


class TerminalStore(RingStore):
    """Each terminal's recent transactions with their labels as known so far, in time order.

    An event is 21 bytes: its time (ms), its label, its transaction key and the running
    count of fraud labels up to it in its ring (`cum`: what makes a window two binary
    searches; derived, so checkpoints leave it out and a restore recounts it).
    """

    event_dtypes: ClassVar[dict[str, type]] = {
        "time": np.int64,
        "fraud": np.int8,
        "key": np.int64,
        "cum": np.int32,
    }
    # Lifetime counts per terminal (kept by the shard), so they move with the terminal.
    scalar_dtypes: ClassVar[dict[str, type]] = {
        "length": np.int32,
        "overflow": np.int32,
        "count_total": np.int64,
        "label_total": np.int64,
    }
    snapshot_columns: ClassVar[tuple[str, ...]] = ("time", "fraud", "key")
    snapshot_dtypes: ClassVar[tuple[type, ...]] = (np.int64, np.int8, np.int64)

    def __init__(
        self,
        capacity: int,
        label_delay_ms: int,
        initial_rows: int = 256,
        lateness_ms: int | None = None,
    ) -> None:
        super().__init__(capacity, initial_rows, lateness_ms)
        self.label_delay_ms = int(label_delay_ms)

    def _horizon(self) -> int:
        return int(kernels.WINDOW_LONG) + self.label_delay_ms

    def step(
        self,
        kinds: np.ndarray,
        slots: np.ndarray,
        times_ms: np.ndarray,
        keys: np.ndarray,
        labels: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Walk transactions (kind 0) and labels (kind 1) in order.

        Returns the terminal features of every row (meaningful for transactions) and, for
        labels, whether the labelled transaction was still held.
        """
        n = len(slots)
        out = np.zeros((n, TERMINAL_WIDTH), dtype=np.float64)
        found = np.zeros(n, dtype=np.bool_)
        kinds = np.ascontiguousarray(kinds, dtype=np.int8)
        slots = np.ascontiguousarray(slots, dtype=np.int64)
        times_ms = np.ascontiguousarray(times_ms, dtype=np.int64)
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        labels = np.ascontiguousarray(labels, dtype=np.int8)
        s = self.scalars
        self.dirty[slots] = True

        def step(start: int) -> int:
            e = self.events
            return int(kernels.terminal_step(
                e["time"], e["fraud"], e["key"], e["cum"], e["key"].view(np.int32), self.free_head,
                self.top, s["offset"], s["cap"], s["head"], s["length"], s["overflow"],
                self.capacity, kinds, slots, times_ms, keys, labels,
                np.int64(self.label_delay_ms), out, found, start,
            ))  # fmt: skip

        self._run(step, n)
        self._advance(times_ms[kinds == 0])  # labels carry no event time
        return out, found

    def read(self, ids: Sequence[str], times_ms: np.ndarray) -> np.ndarray:
        """Terminal features of transactions at these times, changing nothing: a terminal
        never seen reads as empty. Equal to what `step` would answer for them, since a
        transaction's own terminal windows end `label_delay_ms` before it."""
        n = len(ids)
        out = np.zeros((n, TERMINAL_WIDTH), dtype=np.float64)
        get = self.index.get
        slots = np.fromiter((get(k, -1) for k in ids), np.int64, n)
        known = np.flatnonzero(slots >= 0)
        if not len(known):
            return out
        e, s = self.events, self.scalars
        m = len(known)
        feats = np.zeros((m, TERMINAL_WIDTH), dtype=np.float64)
        kernels.terminal_step(
            e["time"], e["fraud"], e["key"], e["cum"], e["key"].view(np.int32), self.free_head,
            self.top, s["offset"], s["cap"], s["head"], s["length"], s["overflow"],
            self.capacity, np.full(m, kernels.READ, np.int8), slots[known],
            np.ascontiguousarray(np.asarray(times_ms, np.int64)[known]), np.zeros(m, np.int64),
            np.zeros(m, np.int8), np.int64(self.label_delay_ms), feats, np.zeros(m, np.bool_), 0,
        )  # fmt: skip
        out[known] = feats
        return out

    @classmethod
    def from_form(
        cls,
        form: dict[str, Any],
        capacity: int,
        label_delay_ms: int,
        lateness_ms: int | None = None,
    ) -> TerminalStore:
        """The store a whole capture (`capture(full=True)`, `merge`) describes."""
        store = cls(capacity, label_delay_ms, lateness_ms=lateness_ms)
        cls._restore(store, form)
        store._recount()
        return store

    def _import(
        self, rows: np.ndarray, cols: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Each ring in time order, ties in their order (a checkpoint written before rings
        were kept in time order holds them in arrival order)."""
        times = np.asarray(cols["time"], np.int64)
        order = np.lexsort((np.arange(len(rows)), times, rows))
        return np.ones(len(rows), np.bool_), {c: np.asarray(v)[order] for c, v in cols.items()}

    def _recount(self) -> None:
        """Every ring's running fraud counts, from its labels (after a restore)."""
        n, sc = len(self), self.scalars
        length = sc["length"][:n].astype(np.int64)
        positions = self._kept_positions(np.arange(n))
        fraud = self.events["fraud"][positions].astype(np.int64)
        running = np.cumsum(fraud)
        starts = np.cumsum(length) - length
        first = np.repeat(starts[length > 0], length[length > 0])
        self.events["cum"][positions] = (running - running[first] + fraud[first]).astype(np.int32)


class LinkStore(RingStore):
    """Each link's recent transactions (a device's, an IP address's, an email's, or a
    card's in one merchant country), in time order: time (ms), card identity, transaction
    key, and the time of the same card's previous event there (`prev`: derived, what
    counts distinct cards in one pass; checkpoints leave it out). 28 bytes an event
    (`features.kernels.link_step`)."""

    event_dtypes: ClassVar[dict[str, type]] = {
        "time": np.int64,
        "card": np.int32,
        "key": np.int64,
        "prev": np.int64,
    }
    scalar_dtypes: ClassVar[dict[str, type]] = {
        "length": np.int32,
        "overflow": np.int32,
        "count_total": np.int64,
    }
    snapshot_columns: ClassVar[tuple[str, ...]] = ("time", "card", "key")
    snapshot_dtypes: ClassVar[tuple[type, ...]] = (np.int64, np.int32, np.int64)

    def step(
        self,
        slots: np.ndarray,
        times_ms: np.ndarray,
        cards: np.ndarray,
        keys: np.ndarray,
        earlier: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Link features of each transaction, in order, each recorded once (`LINK_STATS`
        columns), and whether its link already held it (a retry: recorded once).
        `earlier`: the rows that need the card's earlier events counted (all by default;
        `features.spec.needs_earlier`)."""
        n = len(slots)
        out = np.zeros((n, LINK_WIDTH), dtype=np.float64)
        found = np.zeros(n, dtype=np.bool_)
        slots = np.ascontiguousarray(slots, dtype=np.int64)
        times_ms = np.ascontiguousarray(times_ms, dtype=np.int64)
        cards = np.ascontiguousarray(cards, dtype=np.int32)
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        earlier = (
            np.ones(n, np.bool_) if earlier is None else np.ascontiguousarray(earlier, np.bool_)
        )
        s = self.scalars
        self.dirty[slots] = True

        def step(start: int) -> int:
            e = self.events
            return int(kernels.link_step(
                e["time"], e["card"], e["key"], e["prev"], e["key"].view(np.int32),
                self.free_head, self.top, s["offset"], s["cap"], s["head"], s["length"],
                s["overflow"], self.capacity, slots, times_ms, cards, keys, earlier, out,
                found, start,
            ))  # fmt: skip

        self._run(step, n)
        np.add.at(s["count_total"], slots[~found], 1)
        self._advance(times_ms)
        return out, found

    @classmethod
    def from_form(
        cls, form: dict[str, Any], capacity: int, lateness_ms: int | None = None
    ) -> LinkStore:
        """The store a whole capture (`capture(full=True)`, `merge`) describes."""
        store = cls(capacity, lateness_ms=lateness_ms)
        cls._restore(store, form)
        store._relink()
        return store

    def _relink(self) -> None:
        """Every event's `prev` (the same card's previous event in its ring, a day back at
        most), after a restore: what the kernel keeps as events arrive."""
        n = len(self)
        length = self.scalars["length"][:n].astype(np.int64)
        positions = self._kept_positions(np.arange(n))
        rows = np.repeat(np.arange(n), length)
        times = self.events["time"][positions]
        cards = self.events["card"][positions].astype(np.int64)
        order = np.lexsort((np.arange(len(rows)), cards, rows))  # by ring, card, then place
        same = np.zeros(len(order), np.bool_)
        same[1:] = (rows[order][1:] == rows[order][:-1]) & (cards[order][1:] == cards[order][:-1])
        prev = np.full(len(order), NO_TIME, np.int64)
        before = np.roll(times[order], 1)
        near = same & (before > times[order] - MS_PER_DAY)
        prev[near] = before[near]
        out = np.empty(len(order), np.int64)
        out[order] = prev
        self.events["prev"][positions] = out
