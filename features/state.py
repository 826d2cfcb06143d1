"""Per-user and per-terminal state: ring buffers in NumPy arrays, one row per id.

A store owns the id -> row mapping, grows its arrays as ids arrive, and serialises to bytes
(NumPy `.npz`) so a shard can be checkpointed and restored exactly.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from features import kernels

_USER_FEATURES = 11
_TERMINAL_FEATURES = 6


class _RingStore:
    """Rows of fixed-capacity event rings plus per-row scalars, addressed by string id."""

    ring_dtypes: ClassVar[dict[str, type]] = {}
    scalar_dtypes: ClassVar[dict[str, type]] = {}
    scalar_fill: ClassVar[dict[str, int]] = {}

    def __init__(self, capacity: int, initial_rows: int = 256) -> None:
        self.capacity = int(capacity)
        self.index: dict[str, int] = {}
        self.ids: list[str] = []
        self.rings = {
            k: np.zeros((initial_rows, capacity), dtype=d) for k, d in self.ring_dtypes.items()
        }
        self.scalars = {
            k: np.full(initial_rows, self.scalar_fill.get(k, 0), dtype=d)
            for k, d in self.scalar_dtypes.items()
        }

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def rows_allocated(self) -> int:
        return next(iter(self.rings.values())).shape[0]

    def _grow(self, needed: int) -> None:
        rows = self.rows_allocated
        if needed <= rows:
            return
        new_rows = max(needed, rows * 2)
        for k, arr in self.rings.items():
            grown = np.zeros((new_rows, self.capacity), dtype=arr.dtype)
            grown[:rows] = arr
            self.rings[k] = grown
        for k, arr in self.scalars.items():
            grown = np.full(new_rows, self.scalar_fill.get(k, 0), dtype=arr.dtype)
            grown[:rows] = arr
            self.scalars[k] = grown

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
        """Events dropped because a ring was full (windows then undercount)."""
        return int(self.scalars["overflow"][: len(self)].sum())

    def state_nbytes(self) -> int:
        """Bytes of state held for the ids in use (arrays only, excluding the id index)."""
        n = len(self)
        per_row = sum(a.dtype.itemsize * self.capacity for a in self.rings.values())
        per_row += sum(a.dtype.itemsize for a in self.scalars.values())
        return n * per_row

    def to_bytes(self) -> bytes:
        """Snapshot of the ids in use, holding only the events the rings keep (not their free
        slots); `from_bytes` restores a store that continues identically."""
        n = len(self)
        head = self.scalars["head"][:n].astype(np.int64)
        length = self.scalars["length"][:n].astype(np.int64)
        cols = np.arange(self.capacity)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in self.rings}
        for a in range(0, n, 8192):  # bounded temporaries on large shards
            h, ln = head[a : a + 8192, None], length[a : a + 8192, None]
            idx = (h + cols[None, :]) % self.capacity
            used = cols[None, :] < ln
            rows = np.arange(a, a + len(h))[:, None]
            for k, ring in self.rings.items():
                parts[k].append(ring[rows, idx][used])
        arrays = {
            f"ring_{k}": np.concatenate(v) if v else np.empty(0, self.rings[k].dtype)
            for k, v in parts.items()
        }
        arrays.update({f"scalar_{k}": v[:n] for k, v in self.scalars.items()})
        buf = io.BytesIO()
        meta = json.dumps({"capacity": self.capacity, "ids": self.ids}).encode()
        np.savez(buf, meta=np.frombuffer(meta, dtype=np.uint8), **arrays)
        return buf.getvalue()

    @classmethod
    def _restore(cls, store: _RingStore, data: bytes) -> None:
        with np.load(io.BytesIO(data)) as npz:
            meta = json.loads(npz["meta"].tobytes().decode())
            if meta["capacity"] != store.capacity:
                raise ValueError(
                    f"snapshot capacity {meta['capacity']} != configured {store.capacity}"
                )
            store.ids = list(meta["ids"])
            store.index = {k: i for i, k in enumerate(store.ids)}
            store._grow(len(store.ids))
            n = len(store.ids)
            for k in store.scalars:
                store.scalars[k][:n] = npz[f"scalar_{k}"]
            length = store.scalars["length"][:n].astype(np.int64)
            store.scalars["head"][:n] = 0  # events are written back from slot 0
            rows = np.repeat(np.arange(n), length)
            offsets = np.concatenate([[0], np.cumsum(length)[:-1]]) if n else np.empty(0, np.int64)
            cols = np.arange(len(rows)) - np.repeat(offsets, length)
            for k in store.rings:
                store.rings[k][rows, cols] = npz[f"ring_{k}"]


class UserStore(_RingStore):
    """Each card's recent transactions (time, amount, terminal) and lifetime totals."""

    ring_dtypes: ClassVar[dict[str, type]] = {
        "time": np.int64,
        "amount": np.float64,
        "term": np.int32,
    }
    scalar_dtypes: ClassVar[dict[str, type]] = {
        "head": np.int32,
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
        out = np.empty((len(slots), _USER_FEATURES), dtype=np.float64)
        r, s = self.rings, self.scalars
        kernels.user_step(
            r["time"],
            r["amount"],
            r["term"],
            s["head"],
            s["length"],
            s["count_total"],
            s["sum_total"],
            s["last_time"],
            s["overflow"],
            np.ascontiguousarray(slots, dtype=np.int64),
            np.ascontiguousarray(times_ms, dtype=np.int64),
            np.ascontiguousarray(amounts, dtype=np.float64),
            np.ascontiguousarray(terminal_hashes, dtype=np.int32),
            out,
        )
        return out

    @classmethod
    def from_bytes(cls, data: bytes, capacity: int) -> UserStore:
        store = cls(capacity)
        cls._restore(store, data)
        return store


class TerminalStore(_RingStore):
    """Each terminal's recent transactions with their labels as known so far."""

    ring_dtypes: ClassVar[dict[str, type]] = {"time": np.int64, "fraud": np.int8, "key": np.int64}
    scalar_dtypes: ClassVar[dict[str, type]] = {
        "head": np.int32,
        "length": np.int32,
        "overflow": np.int32,
    }

    def __init__(self, capacity: int, label_delay_ms: int, initial_rows: int = 256) -> None:
        super().__init__(capacity, initial_rows)
        self.label_delay_ms = int(label_delay_ms)

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
        out = np.zeros((n, _TERMINAL_FEATURES), dtype=np.float64)
        found = np.zeros(n, dtype=np.bool_)
        r, s = self.rings, self.scalars
        kernels.terminal_step(
            r["time"],
            r["fraud"],
            r["key"],
            s["head"],
            s["length"],
            s["overflow"],
            np.ascontiguousarray(kinds, dtype=np.int8),
            np.ascontiguousarray(slots, dtype=np.int64),
            np.ascontiguousarray(times_ms, dtype=np.int64),
            np.ascontiguousarray(keys, dtype=np.int64),
            np.ascontiguousarray(labels, dtype=np.int8),
            np.int64(self.label_delay_ms),
            out,
            found,
        )
        return out, found

    @classmethod
    def from_bytes(cls, data: bytes, capacity: int, label_delay_ms: int) -> TerminalStore:
        store = cls(capacity, label_delay_ms)
        cls._restore(store, data)
        return store
