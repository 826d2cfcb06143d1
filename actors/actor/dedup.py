"""Which transactions a shard has already applied, and what it answered for them.

A retry (same id, same body) gets the stored features back and changes no state; the same id
with another body is a conflict. Entries stay in memory for a window of event time behind
the newest transaction seen and up to a maximum count, whichever is smaller; with an
archive (`DedupArchive`), every entry is also kept in the state store for `retain_ms` of
event time, so a retry is recognised for that long whatever the volume.

The archive is read only for a transaction that could have left memory: one whose event
time is at or before the newest time of any entry evicted so far (a retry carries its
original's time). Live traffic arrives newer than that, so it never waits on the store; a
retry or a late transaction older than the memory window costs one store read.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from enum import IntEnum
from typing import Any

import numpy as np

from actors.store.backends import StateStore


class Seen(IntEnum):
    NEW = 0
    DUPLICATE = 1
    CONFLICT = 2


Key = str | int
NO_TIME = -(2**62)
MS_PER_DAY = 86_400_000


def archive_key(key: Key) -> str:
    """How a key is named in the archive: a digest as it is, a 64-bit transaction key as
    the base64 of its 8 bytes (its decimal digits could read as a card number)."""
    if isinstance(key, str):
        return key
    raw = int(key).to_bytes(8, "big", signed=True)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class DedupArchive:
    """A shard's entries in the state store (`archive-<shard>`: key -> body hash and
    features), read back together with every other archive of its kind, so an id is
    recognised whichever layout applied it (a rescale moves nothing)."""

    def __init__(self, store: StateStore, kind: str, shard: str, retain_ms: int) -> None:
        """`kind`: "user" or "terminal"; `shard`: the writer's name ("user-0-of-2")."""
        self.store, self.retain_ms = store, retain_ms
        self.prefix = f"archive-{kind}-"
        self.name = f"archive-{shard}"
        self.reads = 0  # store reads on a request path (old transactions only)
        self._expired_day = NO_TIME  # the day before which this process last expired

    def put(
        self, keys: Sequence[Key], bodies: np.ndarray, times: np.ndarray, feats: np.ndarray
    ) -> None:
        """Entries as fixed binary values: the body hash (8 bytes) then the features
        (float64), so reading one back parses numbers, nothing else."""
        rows = np.ascontiguousarray(feats, "<f8")
        heads = np.asarray(bodies, "<i8").tobytes()
        entries = [
            (archive_key(k), t, heads[8 * i : 8 * i + 8] + rows[i].tobytes())
            for i, (k, t) in enumerate(zip(keys, np.asarray(times).tolist(), strict=True))
        ]
        if entries:
            self.store.archive(self.name, entries)

    def get(self, keys: Sequence[Key], times: np.ndarray) -> list[tuple[int, np.ndarray] | None]:
        """Each key's entry from whichever archive of the kind holds it."""
        self.reads += 1
        wanted = [(archive_key(k), t) for k, t in zip(keys, times.tolist(), strict=True)]
        found: list[bytes | None] = [None] * len(wanted)
        for name in self.store.archive_names(self.prefix):
            missing = [i for i, v in enumerate(found) if v is None]
            if not missing:
                break
            values = self.store.archived(name, [wanted[i] for i in missing])
            for i, value in zip(missing, values, strict=True):
                found[i] = value
        out: list[tuple[int, np.ndarray] | None] = []
        for value in found:
            if value is None or len(value) < 8 or (len(value) - 8) % 8:
                out.append(None)  # nothing held (or not an entry this build wrote)
                continue
            body = int(np.frombuffer(value[:8], "<i8")[0])
            out.append((body, np.frombuffer(value[8:], "<f8").astype(np.float64)))
        return out

    def expire(self, newest_ms: int) -> None:
        """Drop what is older than the archives keep, in every archive of the kind (those of
        retired layouts too): whole days, so at most once a day of event time."""
        before = newest_ms - self.retain_ms
        if before // MS_PER_DAY > self._expired_day:
            for name in self.store.archive_names(self.prefix):
                self.store.expire_archive(name, before)
            self._expired_day = before // MS_PER_DAY


class DedupIndex:
    """Entries in arrival order, in columns: key -> arrival number in a dict, and the body
    hash, event time and features of each arrival in NumPy arrays. A batch is checked and
    recorded with one dict operation per key and array operations for the rest: per-entry
    tuples and feature copies cost ~1.5 us a transaction in the shards."""

    def __init__(
        self,
        n_features: int,
        window_ms: int,
        max_entries: int,
        archive: DedupArchive | None = None,
    ) -> None:
        self.n_features = n_features
        self.window_ms = window_ms
        self.max_entries = max_entries
        self.archive = archive
        self._evicted_newest = NO_TIME  # the newest event time of any entry evicted so far
        self._archived = 0  # arrival numbers below this are in the archive
        self._waiting = False  # entries due to leave memory wait for the archive
        self._pos: dict[Key, int] = {}  # key -> arrival number
        self._base = self._head = self._tail = 0  # arrival numbers: row 0, oldest live, next
        self._keys: list[Key] = []  # by row (arrival number - base)
        self._owners: list[str] = []  # the card or terminal digest of each row's entry
        self._body = np.empty(0, np.int64)
        self._time = np.empty(0, np.int64)
        self._feats = np.empty((0, n_features), np.float64)
        self._newest = -(2**62)
        self._captured = 0  # arrival numbers below this are in a capture
        self.hits = 0
        self.conflicts = 0

    def __len__(self) -> int:
        return self._tail - self._head

    @property
    def archive_reads(self) -> int:
        """Store reads on the request path so far (old transactions and late retries)."""
        return self.archive.reads if self.archive is not None else 0

    def check_many(
        self, keys: Sequence[Key], body_hashes: np.ndarray, times: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(`Seen` per key, features): a duplicate's row holds its stored features, every
        other row zeros. A key seen with another body hash is a conflict. With `times` (each
        key's event time), keys that may have left memory are looked up in the archive."""
        n = len(keys)
        status = np.zeros(n, np.int8)
        feats = np.zeros((n, self.n_features), np.float64)
        get = self._pos.get
        pos = np.fromiter((get(k, -1) for k in keys), np.int64, n)
        found = np.flatnonzero(pos >= 0)
        bodies = np.asarray(body_hashes, np.int64)
        if len(found):
            rows = pos[found] - self._base
            same = self._body[rows] == bodies[found]
            status[found] = np.where(same, Seen.DUPLICATE, Seen.CONFLICT)
            feats[found[same]] = self._feats[rows[same]]
            self.hits += int(same.sum())
            self.conflicts += int(len(same) - same.sum())
        for i, (body, stored) in self._from_archive(keys, times, pos < 0):
            same = body == int(bodies[i])
            status[i] = Seen.DUPLICATE if same else Seen.CONFLICT
            if same:
                feats[i] = stored
            self.hits += int(same)
            self.conflicts += int(not same)
        return status, feats

    def stored_many(
        self, keys: Sequence[Key], times: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(known per key, the features stored for each known one): a read, not a retry,
        so nothing is counted. `times` as for `check_many`."""
        n = len(keys)
        feats = np.zeros((n, self.n_features), np.float64)
        get = self._pos.get
        pos = np.fromiter((get(k, -1) for k in keys), np.int64, n)
        known = pos >= 0
        if known.any():
            feats[known] = self._feats[pos[known] - self._base]
        for i, (_, stored) in self._from_archive(keys, times, ~known):
            known[i] = True
            feats[i] = stored
        return known, feats

    def _from_archive(
        self, keys: Sequence[Key], times: np.ndarray | None, missing: np.ndarray
    ) -> list[tuple[int, tuple[int, np.ndarray]]]:
        """(row, (body hash, features)) of the archived entries among the rows missing from
        memory that could have left it (event time at or before the newest evicted)."""
        if self.archive is None or times is None or self._evicted_newest == NO_TIME:
            return []
        old = np.flatnonzero(missing & (np.asarray(times, np.int64) <= self._evicted_newest))
        if not len(old):
            return []
        rows = old.tolist()
        got = self.archive.get([keys[i] for i in rows], np.asarray(times, np.int64)[old])
        return [
            (i, (body, self._stored(feats, 1)[0]))
            for i, entry in zip(rows, got, strict=True)
            if entry is not None
            for body, feats in [entry]
        ]

    def record_many(
        self,
        keys: Sequence[Key],
        body_hashes: np.ndarray,
        times: np.ndarray,
        feats: np.ndarray,
        owners: Sequence[str],
    ) -> None:
        """Remember new keys (in arrival order) with the digest of the card or terminal
        each belongs to (its key group moves them), then evict what fell out of the window."""
        m = len(keys)
        if m == 0:
            return
        self._make_room(m)
        a = self._tail - self._base
        self._body[a : a + m] = body_hashes
        self._time[a : a + m] = times
        self._feats[a : a + m] = feats
        self._keys[a:] = keys
        self._owners[a:] = owners
        self._pos.update(zip(keys, range(self._tail, self._tail + m), strict=True))
        self._tail += m
        self._newest = max(self._newest, int(np.max(times)))
        self._evict()

    def _make_room(self, m: int) -> None:
        """Room for `m` more rows: drop evicted rows from the front, or grow (doubling)."""
        live, used = self._tail - self._head, self._tail - self._base
        if used + m <= len(self._body):
            return
        cap = len(self._body)
        if live + m > cap // 2:
            cap = max(2 * cap, live + m, 1024)
        live_rows = slice(self._head - self._base, self._tail - self._base)
        body, time, feats = self._body, self._time, self._feats
        self._body, self._time = np.empty(cap, np.int64), np.empty(cap, np.int64)
        self._feats = np.empty((cap, self.n_features), np.float64)
        self._body[:live], self._time[:live] = body[live_rows], time[live_rows]
        self._feats[:live] = feats[live_rows]
        self._keys = self._keys[live_rows]
        self._owners = self._owners[live_rows]
        self._base = self._head

    def _evict(self) -> None:
        """Drop the oldest entries past the count limit, then those past the window, in
        arrival order (stopping at the first one inside it). With an archive, only entries
        it holds leave memory (the rest stay until the next checkpoint archives them)."""
        head = max(self._head, self._tail - self.max_entries)
        old = self._time[head - self._base : self._tail - self._base] < (
            self._newest - self.window_ms
        )
        head += len(old) if old.all() else int(np.argmin(old))
        if self.archive is not None:
            self._waiting = head > max(self._head, self._archived)
            head = min(head, max(self._head, self._archived))
        if head > self._head:
            gone = self._time[self._head - self._base : head - self._base]
            self._evicted_newest = max(self._evicted_newest, int(gone.max()))
        pos = self._pos
        for p, key in enumerate(
            self._keys[self._head - self._base : head - self._base], self._head
        ):
            if pos.get(key) == p:  # a key recorded again since points at its newer row
                del pos[key]
        self._head = head

    def capture(self, full: bool) -> dict[str, Any]:
        """The entries recorded since the last capture (every live one when `full`) and
        where the live ones now start, as plain arrays: arrival numbers run on across
        captures, so `merge` can drop what was evicted since."""
        start = self._head if full else max(self._captured, self._head)
        a, b = start - self._base, self._tail - self._base
        self._captured = self._tail
        return {
            "head": self._head,
            "first": start,
            "keys": self._keys[a:b],
            "owners": self._owners[a:b],
            "body": self._body[a:b].copy(),
            "time": self._time[a:b].copy(),
            "feats": self._feats[a:b].copy(),
            "newest": self._newest,
            "evicted_newest": self._evicted_newest,
            "hits": self.hits,
            "conflicts": self.conflicts,
        }

    def waiting(self) -> bool:
        """Whether memory holds half again its limit in entries waiting for a checkpoint to
        archive them: only then is one taken early. Entries past the window, or past the
        limit by less, wait for the regular cadence (`state.snapshot_every`): a checkpoint
        per request when every request pushes entries out (a replay, or batches) cost the
        service most of its throughput."""
        return self._waiting and len(self) > self.max_entries * 3 // 2

    def archive_capture(self, form: dict[str, Any]) -> None:
        """Put a capture's entries in the archive (the checkpoint writer's job, off the
        request path), expire what is older than the archive keeps, and let those entries
        leave memory from now on."""
        if self.archive is None:
            return
        keys = form["keys"]
        self.archive.put(keys, np.asarray(form["body"]), np.asarray(form["time"]), form["feats"])
        self.archive.expire(int(form["newest"]))
        self._archived = max(self._archived, int(form["first"]) + len(keys))

    @staticmethod
    def merge(base: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
        """A whole capture with a later one's entries added and its evictions applied."""
        head, first = int(delta["head"]), int(base["first"])
        drop = min(max(head - first, 0), len(base["keys"]))
        if drop < len(base["keys"]) and first + len(base["keys"]) != int(delta["first"]):
            raise ValueError("dedup captures out of order")
        out = dict(delta)
        out["first"] = first + drop if drop < len(base["keys"]) else int(delta["first"])
        out["keys"] = [*base["keys"][drop:], *delta["keys"]]
        out["owners"] = [*base["owners"][drop:], *delta["owners"]]
        for column in ("body", "time", "feats"):
            out[column] = np.concatenate([np.asarray(base[column])[drop:], delta[column]])
        return out

    @staticmethod
    def select(form: dict[str, Any], keep: np.ndarray) -> dict[str, Any]:
        """The entries of a whole capture where `keep` is true (moving key groups)."""
        keep = np.asarray(keep, np.bool_)
        picked = keep.tolist()
        out = dict(form)
        out["keys"] = [k for k, p in zip(form["keys"], picked, strict=True) if p]
        out["owners"] = [o for o, p in zip(form["owners"], picked, strict=True) if p]
        for column in ("body", "time", "feats"):
            out[column] = np.asarray(form[column])[keep]
        out["first"] = out["head"] = 0
        return out

    def concat(self, forms: list[dict[str, Any]]) -> dict[str, Any]:
        """One whole capture of the entries of several, in event-time order (the window
        and the count limit evict the oldest first)."""
        time = np.concatenate([np.empty(0, np.int64), *(f["time"] for f in forms)])
        order = np.argsort(time, kind="stable")
        keys = [k for f in forms for k in f["keys"]]
        owners = [o for f in forms for o in f["owners"]]
        feats = [self._stored(f["feats"], len(f["keys"])) for f in forms]
        return {
            "head": 0, "first": 0,
            "keys": [keys[i] for i in order.tolist()],
            "owners": [owners[i] for i in order.tolist()],
            "body": np.concatenate([np.empty(0, np.int64), *(f["body"] for f in forms)])[order],
            "time": time[order],
            "feats": np.concatenate([np.empty((0, self.n_features)), *feats])[order],
            "newest": max([-(2**62), *(int(f["newest"]) for f in forms)]),
            "evicted_newest": max(
                [NO_TIME, *(int(f.get("evicted_newest", NO_TIME)) for f in forms)]
            ),
            "hits": sum(int(f["hits"]) for f in forms),
            "conflicts": sum(int(f["conflicts"]) for f in forms),
        }  # fmt: skip

    def _stored(self, feats: Any, n: int) -> np.ndarray:
        """A capture's features as n rows of this engine's width. A kernel's columns are
        only ever appended to, so a capture from an engine with fewer holds a prefix of each
        row: the columns it lacks are unknown (NaN, which the model and its reasons take as
        missing), and a replayed duplicate still counts once."""
        flat = np.asarray(feats, np.float64).ravel()
        width = flat.size // n if n else self.n_features
        if n and (width * n != flat.size or width > self.n_features):
            raise ValueError(
                f"stored deduplication entries hold {flat.size} feature values for {n} "
                f"entries; this engine computes {self.n_features} per entry"
            )
        out = np.full((n, self.n_features), np.nan)
        out[:, :width] = flat.reshape(n, width)
        return out

    def load(self, form: dict[str, Any]) -> None:
        """Become the index a whole capture describes."""
        keys = list(form["keys"])
        n = len(keys)
        first = int(form["first"])
        self._body = np.asarray(form["body"], np.int64)
        self._time = np.asarray(form["time"], np.int64)
        self._feats = self._stored(form["feats"], n)
        self._keys = keys
        self._owners = list(form["owners"])
        self._pos = dict(zip(keys, range(first, first + n), strict=True))
        self._base = self._head = first
        self._tail = self._captured = first + n
        self._newest = int(form["newest"])
        # A store written before the archive existed records no eviction: nothing is looked
        # up there until this index evicts (its archive starts empty then too).
        self._evicted_newest = int(form.get("evicted_newest", NO_TIME))
        self._archived = self._tail  # a whole capture is stored: its entries are archived
        self.hits, self.conflicts = int(form["hits"]), int(form["conflicts"])
