"""Which transactions a shard has already applied, and what it answered for them.

A retry (same id, same body) gets the stored features back and changes no state; the same id
with another body is a conflict. Entries are kept for a window of event time behind the
newest transaction seen and up to a maximum count, whichever is smaller.
"""

from __future__ import annotations

import io
import json
from collections import OrderedDict
from enum import IntEnum

import numpy as np


class Seen(IntEnum):
    NEW = 0
    DUPLICATE = 1
    CONFLICT = 2


class DedupIndex:
    def __init__(self, n_features: int, window_ms: int, max_entries: int) -> None:
        self.n_features = n_features
        self.window_ms = window_ms
        self.max_entries = max_entries
        # key -> (body hash, event time, features); an OrderedDict because a plain dict's
        # "first key" costs O(deleted entries) once many were evicted from its front.
        self._entries: OrderedDict[str | int, tuple[int, int, np.ndarray]] = OrderedDict()
        self._newest = -(2**62)
        self.hits = 0
        self.conflicts = 0

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, key: str | int, body_hash: int) -> tuple[Seen, np.ndarray | None]:
        entry = self._entries.get(key)
        if entry is None:
            return Seen.NEW, None
        if entry[0] != body_hash:
            self.conflicts += 1
            return Seen.CONFLICT, None
        self.hits += 1
        return Seen.DUPLICATE, entry[2]

    def record(self, key: str | int, body_hash: int, time_ms: int, features: np.ndarray) -> None:
        self._entries[key] = (body_hash, time_ms, features.copy())
        self._newest = max(self._newest, time_ms)

    def evict(self) -> None:
        """Drop the oldest entries past the window or the count limit (arrival order)."""
        entries = self._entries
        horizon = self._newest - self.window_ms
        while entries:
            key = next(iter(entries))
            if len(entries) > self.max_entries or entries[key][1] < horizon:
                entries.popitem(last=False)
            else:
                break

    def to_bytes(self) -> bytes:
        keys = list(self._entries)
        body = np.fromiter((self._entries[k][0] for k in keys), np.int64, len(keys))
        time = np.fromiter((self._entries[k][1] for k in keys), np.int64, len(keys))
        feats = (
            np.stack([self._entries[k][2] for k in keys])
            if keys
            else np.empty((0, self.n_features))
        )
        # Integer keys go in binary: as decimal text, a key can look like a card number.
        int_keys = bool(keys) and all(isinstance(k, int) for k in keys)
        ikeys = np.array(keys if int_keys else [], dtype=np.int64)
        buf = io.BytesIO()
        meta = json.dumps({"keys": [] if int_keys else keys, "newest": self._newest}).encode()
        np.savez(
            buf, meta=np.frombuffer(meta, np.uint8), ikeys=ikeys, body=body, time=time, feats=feats
        )
        return buf.getvalue()

    def restore(self, data: bytes) -> None:
        with np.load(io.BytesIO(data)) as npz:
            meta = json.loads(npz["meta"].tobytes().decode())
            body, time, feats = npz["body"], npz["time"], npz["feats"]
            keys = meta["keys"] or npz["ikeys"].tolist()
        self._entries = OrderedDict(
            (k, (int(body[i]), int(time[i]), feats[i])) for i, k in enumerate(keys)
        )
        self._newest = int(meta["newest"])
