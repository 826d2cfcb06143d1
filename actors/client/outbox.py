"""Flagged decisions made durable where the answer is made, and delivered to the desk later.

An answer that holds a REVIEW or BLOCK waits for one append to its replica's outbox (a
journal of its own in the state store, `outbox-<replica>`), not for the desk: a desk that
is away or restarting costs a flagged answer nothing. The replica's report tick (and any
read of the desk from this replica) hands what the outbox holds to the desk, and
checkpoints over it once the desk has it. The desk skips transactions it already holds,
so a batch delivered twice (a crash between the two) is applied once. An outbox whose
replica is gone (nothing appended to it for `ORPHAN_AFTER_MS`) is delivered by whichever
replica finds it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Final

from actors.actor.decision_log import DecidedBatch
from actors.client.desk import DeskClient, PendingDecisions
from actors.client.store_calls import StoreCalls
from actors.errors import Unavailable
from actors.store import records
from actors.store.backends import StateStore, StoreUnavailable

log = logging.getLogger(__name__)
PREFIX: Final = "outbox-"
ORPHAN_AFTER_MS: Final = 60_000
DELIVERED: Final = records.encode({})  # the checkpoint over delivered records holds nothing


def _now_ms() -> int:
    return int(time.time() * 1000)


class DeskOutbox:
    """`deployments.scoring.pipeline.DecisionSink` of a deciding replica: flagged batches
    into its outbox (the answer waits for the append), LEGIT-only ones into `pending`."""

    def __init__(self, store: StateStore, desk: DeskClient, pending: PendingDecisions) -> None:
        self.store, self.desk, self.pending = store, desk, pending
        self.name = PREFIX + uuid.uuid4().hex[:12]  # a fresh outbox per replica start
        self.seq = 0
        self._unsent: list[tuple[int, DecidedBatch]] = []
        self._calls = StoreCalls(store, "outbox")
        self.adopted = 0  # batches delivered from outboxes of replicas that are gone
        self._delivering = asyncio.Lock()

    async def record(self, batch: DecidedBatch, wait: bool) -> None:
        if not wait:
            self.pending.add(batch)
            return
        self.seq += 1
        seq = self.seq
        data = records.encode({"at": _now_ms(), "batch": batch.to_record()})
        try:
            await self._calls.append(self.name, seq, data)
        except StoreUnavailable as e:  # nothing recorded: the client retries (503), deduplicated
            raise Unavailable("state_store_unavailable", retry_after_s=2) from e
        self._unsent.append((seq, batch))

    @property
    def unsent(self) -> int:
        """Flagged batches recorded here and not yet handed to the desk."""
        return len(self._unsent)

    async def deliver(self) -> int:
        """Hand the desk every flagged batch recorded here, then drop them from the outbox;
        returns how many. One delivery at a time, so a checkpoint never covers a batch that
        another delivery still holds."""
        async with self._delivering:
            taken, self._unsent = self._unsent, []
            if not taken:
                return 0
            try:
                await self.desk.record_many([b for _, b in taken])
            except BaseException:
                self._unsent[:0] = taken  # first in the next delivery
                raise
            # A failure here leaves them in the store: delivered again by `adopt`, applied once.
            await self._calls.call(self.store.checkpoint, self.name, taken[-1][0], DELIVERED, True)
            return len(taken)

    async def orphans(self) -> list[str]:
        """The outboxes of other replicas that hold records (gone or not)."""
        names: list[str] = await self._calls.call(self.store.names, PREFIX)
        return [n for n in names if n != self.name]

    async def adopt(self, outboxes: list[str]) -> int:
        """Deliver the records of these outboxes (other replicas') where nothing was appended
        for `ORPHAN_AFTER_MS`, then checkpoint over them. Returns the batches delivered."""
        done = 0
        for name in outboxes:
            if name == self.name:
                continue
            stored = await self._calls.call(self.store.load, name)
            if not stored.log:
                continue
            entries = [records.decode(data) for _, data in stored.log]
            if max(int(e["at"]) for e in entries) > _now_ms() - ORPHAN_AFTER_MS:
                continue  # its replica may still be delivering it
            await self.desk.record_many([DecidedBatch.from_record(e["batch"]) for e in entries])
            await self._calls.call(self.store.checkpoint, name, stored.log[-1][0], DELIVERED, True)
            log.info("delivered %d flagged batches of a replica that is gone", len(entries))
            done += len(entries)
        self.adopted += done
        return done
