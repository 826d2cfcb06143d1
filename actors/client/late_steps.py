"""Card steps answered degraded, kept durable in the state store until their shard applies
them, so a replica that dies with steps still queued (`CardBacklog` holds them in memory)
loses none.

An answer given without card state waits for one append of its step to the replica's
journal for that shard (`late-<replica>-<shard>`), with the cards' routes; once the shard
has applied the step (and its terminal writes have been handed on), a checkpoint drops it.
A journal whose oldest step has waited `ORPHAN_AFTER_MS` is taken by whichever replica
finds it: it sends the steps again, routed by the layout in force, then their terminal
writes, then drops them. Shards deduplicate, so a step sent by both (its replica was only
slow) is applied once.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Final

import numpy as np

from actors.client.store_calls import StoreCalls
from actors.errors import Unavailable
from actors.events import CardEvents
from actors.store import records
from actors.store.backends import StateStore, StoreUnavailable

log = logging.getLogger(__name__)
PREFIX: Final = "late-"
ORPHAN_AFTER_MS: Final = 20_000
APPLIED: Final = records.encode({})  # the checkpoint over applied steps holds nothing

Held = tuple[str, int]  # (journal, seq) of a step kept until applied
Orphan = tuple[str, list[tuple[int, np.ndarray, CardEvents]]]  # journal, (seq, routes, step)


def _now_ms() -> int:
    return int(time.time() * 1000)


class LateSteps:
    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.replica = uuid.uuid4().hex[:12]  # a fresh set of journals per replica start
        self.seq = 0
        self.adopted = 0  # steps sent again from journals of replicas that are gone
        self._calls = StoreCalls(store, "late-steps")

    async def hold(self, shard: int, routes: np.ndarray, events: CardEvents) -> Held:
        """Keep this step (the answer waits for it); `routes`: its cards' key routes."""
        self.seq += 1
        name, seq = f"{PREFIX}{self.replica}-{shard}", self.seq
        form = {"at": _now_ms(), "routes": np.asarray(routes, np.int64), "events": events.items()}
        try:
            await self._calls.append(name, seq, records.encode(form))
        except StoreUnavailable as e:  # not kept: not answered either (the client retries)
            raise Unavailable("state_store_unavailable", retry_after_s=2) from e
        return name, seq

    async def release(self, held: Held) -> None:
        """The step (and every one before it in its journal) is applied: drop them."""
        try:
            await self._calls.call(self.store.checkpoint, held[0], held[1], APPLIED, True)
        except StoreUnavailable as e:  # kept: sent again later, deduplicated
            log.warning("late steps: release failed (%s)", type(e).__name__)

    async def orphans(self) -> list[Orphan]:
        """Other replicas' journals whose oldest step has waited `ORPHAN_AFTER_MS`."""
        names: list[str] = await self._calls.call(self.store.names, PREFIX)
        mine = f"{PREFIX}{self.replica}-"
        found: list[Orphan] = []
        for name in names:
            if name.startswith(mine):
                continue
            stored = await self._calls.call(self.store.load, name)
            if not stored.log:
                continue
            forms = [(seq, records.decode(data)) for seq, data in stored.log]
            if min(int(f["at"]) for _, f in forms) > _now_ms() - ORPHAN_AFTER_MS:
                continue  # its replica may still apply them
            steps = [
                (seq, np.asarray(f["routes"], np.int64), CardEvents.from_items(f["events"]))
                for seq, f in forms
            ]
            found.append((name, steps))
        return found

    def close(self) -> None:
        self._calls.close()
