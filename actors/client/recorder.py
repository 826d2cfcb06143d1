"""A deciding replica's writer of the decision record (`actors.store.decisions`).

An answer waits for one append of its batch to the replica's record journal in the state
store (`record-<replica>`, as flagged batches wait for the desk outbox): a decision answered
is a decision recorded, even when its replica dies a moment later. The Parquet files are
written off the answer path: every `flush_seconds` the report loop writes what the journal
holds (from memory) and then checkpoints over it. A journal whose replica is gone (its
newest entry older than `ORPHAN_AFTER_MS`) is written by whichever replica finds it. A crash between
a file and its checkpoint writes those rows again; readers drop the copies.

While the record's storage refuses writes, rows stay in the journal; past
`max_buffered_rows` the replica stops holding them in memory too and reads them back from
the journal once the storage is back (`spilled`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa

from actors.actor.decision_log import DecidedBatch
from actors.client.store_calls import StoreCalls
from actors.errors import Unavailable
from actors.store import records
from actors.store.backends import StateStore, StoreUnavailable
from actors.store.decisions import SCHEMA, DecisionRecordConfig, DecisionStore
from policy.decision import TIER_NAMES

log = logging.getLogger(__name__)
PREFIX: Final = "record-"
# A live replica writes its journal every `flush_seconds`; one with nothing written for this
# long is gone (or its storage is down, and then a second writer costs only a copy).
ORPHAN_AFTER_MS: Final = 20_000
WRITTEN: Final = records.encode({})  # the checkpoint over written entries holds nothing
EXPIRE_EVERY_S: Final = 3600


@dataclass(frozen=True)
class Entry:
    """One journaled batch: its decisions and what decided them."""

    batch: DecidedBatch
    at_ms: int  # when it was decided
    review: float  # the thresholds in force
    block: float

    def encode(self) -> bytes:
        form = {"at": self.at_ms, "review": self.review, "block": self.block}
        return records.encode({**form, "batch": self.batch.to_record()})

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        form = records.decode(data)
        batch = DecidedBatch.from_record(form["batch"])
        return cls(batch, int(form["at"]), float(form["review"]), float(form["block"]))


def _now_ms() -> int:
    return int(time.time() * 1000)


class DecisionRecorder:
    """`record` on the answer path (one journal append); `flush` and `adopt` from the
    replica's report loop."""

    def __init__(
        self, files: DecisionStore, config: DecisionRecordConfig, journal: StateStore
    ) -> None:
        self.files, self.config, self.journal = files, config, journal
        self.name = PREFIX + uuid.uuid4().hex[:12]  # a fresh journal per replica start
        self.seq = 0
        self.written_rows = 0
        self.failed_flushes = 0
        self.adopted = 0  # batches written from journals of replicas that are gone
        self._held: list[tuple[int, Entry]] = []  # journaled, not yet in a file
        self._held_rows = 0
        self.spilled = False  # held in the journal only (memory was full)
        self._calls = StoreCalls(journal, "record")
        self._flushing = asyncio.Lock()
        self._last_flush = time.monotonic()
        self._last_expire = 0.0

    async def record(self, batch: DecidedBatch, review: float, block: float) -> None:
        """Make the batch's decisions durable (the answer waits for this)."""
        entry = Entry(batch, _now_ms(), review, block)
        self.seq += 1
        seq = self.seq
        try:
            await self._calls.append(self.name, seq, entry.encode())
        except StoreUnavailable as e:  # nothing recorded: the client retries (503)
            raise Unavailable("state_store_unavailable", retry_after_s=2) from e
        if not self.spilled:
            self._held.append((seq, entry))
            self._held_rows += len(batch)
            if self._held_rows > self.config.max_buffered_rows:
                self._spill()

    def _spill(self) -> None:
        self._held, self._held_rows, self.spilled = [], 0, True
        log.warning("decision record: storage behind; rows held in the state store only")

    @property
    def held(self) -> int:
        """Rows journaled and not yet in a file (those in memory; see `spilled`)."""
        return self._held_rows

    def due(self) -> bool:
        return time.monotonic() - self._last_flush >= self.config.flush_seconds

    def stats(self) -> dict[str, Any]:
        return {
            "written": self.written_rows,
            "held": self._held_rows,
            "spilled": self.spilled,
            "failed_flushes": self.failed_flushes,
            "adopted": self.adopted,
        }

    async def flush(self) -> int:
        """Write what the journal holds to the record, then checkpoint over it; returns the
        rows written. A failed write keeps everything for the next flush."""
        async with self._flushing:
            self._last_flush = time.monotonic()
            if self.spilled:  # read back what memory let go of, up to the last append
                self.spilled = False  # from here on, memory holds again
                upto = self.seq
                stored = await self._calls.call(self.journal.load, self.name)
                taken = [(s, Entry.decode(d)) for s, d in stored.log if s <= upto]
            else:
                taken, self._held, self._held_rows = self._held, [], 0
            if not taken:
                return 0
            loop = asyncio.get_running_loop()
            try:
                rows = await loop.run_in_executor(None, self._write, self.name, taken)
            except OSError as e:
                self.failed_flushes += 1
                log.warning("decision record: write failed (%s); kept", type(e).__name__)
                self._keep(taken)
                return 0
            self.written_rows += rows
            try:  # a failure here writes these rows again later: readers drop the copies
                last = taken[-1][0]
                await self._calls.call(self.journal.checkpoint, self.name, last, WRITTEN, True)
            except StoreUnavailable as e:
                log.warning("decision record: checkpoint failed (%s)", type(e).__name__)
            if time.monotonic() - self._last_expire > EXPIRE_EVERY_S:
                self._last_expire = time.monotonic()
                await loop.run_in_executor(None, self._expire)
            return rows

    def _keep(self, taken: list[tuple[int, Entry]]) -> None:
        """Rows a failed write took: first in the next flush, unless memory is full."""
        if self.spilled:
            return  # all of them are in the journal, and the next flush reads it
        self._held[:0] = taken
        self._held_rows += sum(len(e.batch) for _, e in taken)
        if self._held_rows > self.config.max_buffered_rows:
            self._spill()

    def _write(self, journal: str, taken: Sequence[tuple[int, Entry]]) -> int:
        table = arrow(journal, [e for _, e in taken])
        # Named by the journal and its seqs: written again after a crash, the same name.
        self.files.write(table, f"{journal}-{taken[0][0]:012d}-{taken[-1][0]:012d}")
        return int(table.num_rows)

    def _expire(self) -> None:
        try:
            self.files.expire(self.config.retain_days)
        except OSError as e:
            log.warning("decision record: expiry failed (%s)", type(e).__name__)

    async def adopt(self) -> int:
        """Write the journals of replicas that are gone (nothing appended for
        `ORPHAN_AFTER_MS`) to the record, then checkpoint over them; returns the batches."""
        names: list[str] = await self._calls.call(self.journal.names, PREFIX)
        done = 0
        for name in names:
            if name == self.name:
                continue
            stored = await self._calls.call(self.journal.load, name)
            if not stored.log:
                continue
            taken = [(s, Entry.decode(d)) for s, d in stored.log]
            if max(e.at_ms for _, e in taken) > _now_ms() - ORPHAN_AFTER_MS:
                continue  # its replica may still be writing it
            loop = asyncio.get_running_loop()
            self.written_rows += await loop.run_in_executor(None, self._write, name, taken)
            await self._calls.call(self.journal.checkpoint, name, taken[-1][0], WRITTEN, True)
            log.info("decision record: wrote %d batches of a replica that is gone", len(taken))
            done += len(taken)
        self.adopted += done
        return done

    def close(self, timeout_s: float = 10.0) -> None:
        """The replica is stopping: write what the journal holds now, on the journal's own
        thread (no append comes any more). What this misses another replica adopts."""

        def final() -> None:
            stored = self.journal.load(self.name)
            if stored.log:
                taken = [(s, Entry.decode(d)) for s, d in stored.log]
                self.written_rows += self._write(self.name, taken)
                self.journal.checkpoint(self.name, taken[-1][0], WRITTEN, True)

        try:
            self._calls.wait(final, timeout_s)
        except Exception as e:  # never fail a shutdown on it: the journal keeps the rows
            log.warning("decision record: final write failed (%s)", type(e).__name__)
        self._calls.close()


def arrow(journal: str, entries: Sequence[Entry]) -> pa.Table:
    """The rows of these batches as one table: one array per column, not per batch."""
    cols: dict[str, list[Any]] = {f.name: [] for f in SCHEMA}
    numbers: dict[str, list[np.ndarray]] = {
        k: [] for k in ("time_ms", "amount", "score", "tier", "duplicate")
    }
    for e in entries:
        b, n = e.batch, len(e.batch)
        rows = range(n)
        cols["transaction_id"] += b.ids
        cols["decided_ms"] += [e.at_ms] * n
        cols["model_version"] += [b.version] * n
        cols["review_threshold"] += [e.review] * n
        cols["block_threshold"] += [e.block] * n
        cols["policy_version"] += [int(b.policy_version)] * n
        cols["rules"] += [b.rules.get(i, []) for i in rows] if b.rules else [[]] * n
        cols["reasons"] += (
            [json.dumps(b.reasons[i]) if i in b.reasons else None for i in rows]
            if b.reasons
            else [None] * n
        )
        cols["degraded_reason"] += [b.degraded.get(i) for i in rows] if b.degraded else [None] * n
        cols["card"] += b.user
        cols["terminal"] += b.terminal
        cols["replica"] += [journal] * n
        numbers["time_ms"].append(np.asarray(b.time_ms, np.int64))
        numbers["amount"].append(np.asarray(b.amount, np.float64))
        numbers["score"].append(np.asarray(b.score, np.float64))
        numbers["tier"].append(np.asarray(b.tier, np.int64))
        numbers["duplicate"].append(np.asarray(b.duplicate, bool))
    joined = {k: np.concatenate(v) if v else np.zeros(0) for k, v in numbers.items()}
    names = np.asarray(TIER_NAMES, dtype=object)
    arrays = {
        **{k: pa.array(v, SCHEMA.field(k).type) for k, v in cols.items()},
        "time_ms": pa.array(joined["time_ms"].astype(np.int64)),
        "amount": pa.array(joined["amount"].astype(np.float64)),
        "score": pa.array(joined["score"].astype(np.float64)),
        "decision": pa.array(names[joined["tier"].astype(np.int64)].tolist(), pa.string()),
        "duplicate": pa.array(joined["duplicate"].astype(bool)),
    }
    return pa.Table.from_arrays([arrays[f.name] for f in SCHEMA], schema=SCHEMA)
