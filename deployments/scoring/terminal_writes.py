"""Terminal writes that the answer path does not wait for, and the watermark reads wait on.

A transaction's terminal features at time t read only events older than t - delay (the
label delay, `features/spec.py`), so its terminal read goes out beside its card step and
its terminal write follows the card's dedup verdict without holding up the answer. A read
must still see every write older than its window's end: a batch opens a `Ticket` with its
earliest time before it sends anything, and a later batch whose windows reach that time
waits for the ticket first (`settled`). Writes are retried until applied (the terminal
shard deduplicates), with their shard chosen again on every try.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from actors.client import ShardClient, ShardUnavailable, TerminalWrite
from features.engine import TX
from features.groups import group_by_route

log = logging.getLogger(__name__)
RETRY_EVERY_S = 1.0


@dataclass
class Ticket:
    """One batch's writes: none can be older than `earliest_ms`; `done` once applied."""

    number: int
    earliest_ms: int
    done: asyncio.Future[None] = field(repr=False)


class TerminalWrites:
    """The terminal writes this process has sent and not yet seen applied."""

    def __init__(self, shards: ShardClient, wait_s: float = 20.0) -> None:
        """`wait_s`: the longest a read waits for an earlier write (a terminal shard that
        does not come back fails the read itself)."""
        self.shards, self.wait_s = shards, wait_s
        self._open: dict[int, Ticket] = {}
        self._next = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.retries = 0
        self.refused = 0  # rows a shard refused (never expected: logged)

    @property
    def pending(self) -> int:
        return len(self._open)

    def open(self, earliest_ms: int) -> Ticket:
        """A ticket for writes no older than `earliest_ms`, taken before anything is sent."""
        ticket = Ticket(self._next, earliest_ms, asyncio.get_running_loop().create_future())
        self._next += 1
        self._open[ticket.number] = ticket
        return ticket

    async def settled(self, ticket: Ticket, upper_ms: int) -> None:
        """Wait until every write opened before `ticket` that may be `upper_ms` or older
        is applied (a read whose windows end at `upper_ms`)."""
        waits = [
            t.done
            for n, t in self._open.items()
            if n < ticket.number and t.earliest_ms <= upper_ms and not t.done.done()
        ]
        if waits:
            await asyncio.wait(waits, timeout=self.wait_s)

    async def flush(self) -> None:
        """Wait until every write sent so far is applied (before a stream acknowledges its
        entries, and before labels are applied)."""
        waits = [t.done for t in self._open.values() if not t.done.done()]
        if waits:
            await asyncio.wait(waits)

    def close(self, ticket: Ticket) -> None:
        """The ticket's batch writes nothing more (or wrote on its own answer path)."""
        self._open.pop(ticket.number, None)
        if not ticket.done.done():
            ticket.done.set_result(None)

    def send(self, ticket: Ticket, write: TerminalWrite) -> None:
        """Start `write` now (each shard's part on its socket before this returns); the
        ticket closes once all of it is applied."""
        if not len(write):
            self.close(ticket)
            return
        started = self._start(write)
        task = asyncio.get_running_loop().create_task(self._settle(ticket, write, started))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start(self, write: TerminalWrite) -> list[asyncio.Future[tuple[np.ndarray, np.ndarray]]]:
        return [
            self.shards.start_terminal_step(
                s, np.full(len(idx), TX, np.int8), [write.terminal_keys[i] for i in idx],
                write.times[idx], write.tx_keys[idx], np.zeros(len(idx), np.int8),
            )
            for s, idx in group_by_route(
                write.routes, self.shards.n_terminal_shards, self.shards.key_groups
            ).items()
        ]  # fmt: skip

    async def _settle(
        self,
        ticket: Ticket,
        write: TerminalWrite,
        started: Sequence[asyncio.Future[tuple[np.ndarray, np.ndarray]]],
    ) -> None:
        """Wait for the write; while any part failed, send it all again (the terminal shard
        answers an applied transaction from its dedup and changes nothing)."""
        try:
            results = await asyncio.gather(*started, return_exceptions=True)
            while failures := [r for r in results if isinstance(r, BaseException)]:
                if not all(isinstance(f, ShardUnavailable | OSError) for f in failures):
                    self.refused += len(write)  # a shard refused it: retrying cannot help
                    log.error(
                        "terminal write of %d transactions refused: %s",
                        len(write), type(failures[0]).__name__,
                    )  # fmt: skip
                    return
                self.retries += 1
                await asyncio.sleep(RETRY_EVERY_S)
                results = await asyncio.gather(*self._start(write), return_exceptions=True)
        finally:
            self.close(ticket)
