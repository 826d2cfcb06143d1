"""Which transactions a shard has already applied, and what it answered for them.

A retry (same id, same body) gets the stored features back and changes no state; the same id
with another body is a conflict. Entries are kept for a window of event time behind the
newest transaction seen and up to a maximum count, whichever is smaller.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Any

import numpy as np


class Seen(IntEnum):
    NEW = 0
    DUPLICATE = 1
    CONFLICT = 2


Key = str | int


class DedupIndex:
    """Entries in arrival order, in columns: key -> arrival number in a dict, and the body
    hash, event time and features of each arrival in NumPy arrays. A batch is checked and
    recorded with one dict operation per key and array operations for the rest: per-entry
    tuples and feature copies cost ~1.5 us a transaction in the shards."""

    def __init__(self, n_features: int, window_ms: int, max_entries: int) -> None:
        self.n_features = n_features
        self.window_ms = window_ms
        self.max_entries = max_entries
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

    def check_many(
        self, keys: Sequence[Key], body_hashes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(`Seen` per key, features): a duplicate's row holds its stored features, every
        other row zeros. A key seen with another body hash is a conflict."""
        n = len(keys)
        status = np.zeros(n, np.int8)
        feats = np.zeros((n, self.n_features), np.float64)
        get = self._pos.get
        pos = np.fromiter((get(k, -1) for k in keys), np.int64, n)
        found = np.flatnonzero(pos >= 0)
        if len(found):
            rows = pos[found] - self._base
            same = self._body[rows] == np.asarray(body_hashes, np.int64)[found]
            status[found] = np.where(same, Seen.DUPLICATE, Seen.CONFLICT)
            feats[found[same]] = self._feats[rows[same]]
            self.hits += int(same.sum())
            self.conflicts += int(len(same) - same.sum())
        return status, feats

    def stored_many(self, keys: Sequence[Key]) -> tuple[np.ndarray, np.ndarray]:
        """(known per key, the features stored for each known one): a read, not a retry,
        so nothing is counted."""
        n = len(keys)
        feats = np.zeros((n, self.n_features), np.float64)
        get = self._pos.get
        pos = np.fromiter((get(k, -1) for k in keys), np.int64, n)
        known = pos >= 0
        if known.any():
            feats[known] = self._feats[pos[known] - self._base]
        return known, feats

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
        arrival order (stopping at the first one inside it)."""
        head = max(self._head, self._tail - self.max_entries)
        old = self._time[head - self._base : self._tail - self._base] < (
            self._newest - self.window_ms
        )
        head += len(old) if old.all() else int(np.argmin(old))
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
            "hits": self.hits,
            "conflicts": self.conflicts,
        }

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
        self.hits, self.conflicts = int(form["hits"]), int(form["conflicts"])
