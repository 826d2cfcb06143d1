"""A deciding replica's writer of the decision record (`actors.store.decisions`).

Off the answer path: `add` is a list append; the replica's report loop calls `flush` in a
thread, which writes one file per day partition. A replica that crashes loses at most its
unflushed rows (`flush_seconds`); a flush that fails keeps them for the next one, up to
`max_buffered_rows`, beyond which the oldest are dropped and counted (`dropped_rows`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from actors.actor.decision_log import DecidedBatch
from actors.store.decisions import SCHEMA, DecisionRecordConfig, DecisionStore
from policy.decision import TIER_NAMES

log = logging.getLogger(__name__)


@dataclass
class DecisionRecorder:
    """A replica's writer: `add` (on the answer path: a list append) and `flush` (off it,
    from the replica's report loop, in a thread)."""

    store: DecisionStore
    config: DecisionRecordConfig
    replica: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    written_rows: int = 0
    dropped_rows: int = 0
    failed_flushes: int = 0
    _rows: list[tuple[DecidedBatch, int, float, float]] = field(default_factory=list)
    _buffered: int = 0
    _seq: int = 0
    _last_flush: float = 0.0
    _last_expire: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, batch: DecidedBatch, review: float, block: float) -> None:
        self._rows.append((batch, int(time.time() * 1000), review, block))
        self._buffered += len(batch)
        while self._buffered > self.config.max_buffered_rows and len(self._rows) > 1:
            dropped = self._rows.pop(0)[0]
            self._buffered -= len(dropped)
            self.dropped_rows += len(dropped)

    @property
    def buffered(self) -> int:
        return self._buffered

    def stats(self) -> dict[str, int]:
        return {
            "written": self.written_rows,
            "buffered": self._buffered,
            "dropped": self.dropped_rows,
            "failed_flushes": self.failed_flushes,
        }

    def due(self) -> bool:
        return bool(self._rows) and time.monotonic() - self._last_flush >= self.config.flush_seconds

    def flush(self) -> int:
        """Write what is buffered (one file per day partition); returns the rows written.
        On a failure the rows stay buffered, first in the next flush. Thread-safe."""
        with self._lock:
            taken, self._rows = self._rows, []
            self._buffered -= sum(len(b) for b, *_ in taken)
            self._last_flush = time.monotonic()
            if not taken:
                return 0
            table = pa.Table.from_batches(
                [_arrow(b, at, review, block, self.replica) for b, at, review, block in taken],
                schema=SCHEMA,
            )
            self._seq += 1
            try:
                self.store.write(table, f"{self.replica}-{self._seq:08d}")
            except OSError as e:
                self._rows[:0] = taken
                self._buffered += sum(len(b) for b, *_ in taken)
                self.failed_flushes += 1
                log.warning("decision record: flush failed (%s); kept", type(e).__name__)
                return 0
            self.written_rows += int(table.num_rows)
            if time.monotonic() - self._last_expire > 3600:  # retention, once an hour
                self._last_expire = time.monotonic()
                try:
                    self.store.expire(self.config.retain_days)
                except OSError as e:
                    log.warning("decision record: expiry failed (%s)", type(e).__name__)
            return int(table.num_rows)


def _arrow(batch: DecidedBatch, at_ms: int, review: float, block: float, replica: str) -> Any:
    n = len(batch)
    rows = range(n)
    degraded = batch.degraded
    return pa.RecordBatch.from_arrays(
        [
            pa.array(batch.ids, pa.string()),
            pa.array(np.full(n, at_ms, np.int64)),
            pa.array(np.asarray(batch.time_ms, np.int64)),
            pa.array(np.asarray(batch.amount, np.float64)),
            pa.array(np.asarray(batch.score, np.float64)),
            pa.array([TIER_NAMES[t] for t in np.asarray(batch.tier).tolist()], pa.string()),
            pa.array([batch.version] * n, pa.string()),
            pa.array(np.full(n, review, np.float64)),
            pa.array(np.full(n, block, np.float64)),
            pa.array(np.full(n, batch.policy_version, np.int64)),
            pa.array([batch.rules.get(i, []) for i in rows], pa.list_(pa.string())),
            pa.array(
                [json.dumps(batch.reasons[i]) if i in batch.reasons else None for i in rows],
                pa.string(),
            ),
            pa.array([degraded.get(i) for i in rows], pa.string()),
            pa.array(np.asarray(batch.duplicate, bool)),
            pa.array(batch.user, pa.string()),
            pa.array(batch.terminal, pa.string()),
            pa.array([replica] * n, pa.string()),
        ],
        schema=SCHEMA,
    )
