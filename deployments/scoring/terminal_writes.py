"""Terminal writes that the answer path does not wait for, and the watermark reads wait on.

A transaction's terminal features at time t read only events older than t - delay (the
label delay, `features/spec.py`), so its terminal read goes out beside its card step and
its terminal write follows the card's dedup verdict without holding up the answer.

- **Queued, then carried.** A write waits per terminal shard for up to `linger_s`; the next
  read to that shard carries it in the same request, ahead of the reads (`take`), else it
  goes alone when the linger ends. So a steady stream pays one terminal message per
  request, not two.
- **The watermark.** A read must see every write older than its windows' end: a batch
  opens a `Ticket` with its earliest time before it sends anything, and a later batch
  whose windows reach that time waits for the ticket first (`settled`, which sends what is
  queued at once rather than waiting out the linger).
- **Retried until applied.** A write whose request failed goes again every second, routed
  afresh (the terminal shard skips what it holds).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field

from actors.client.protocol import ShardClient, ShardUnavailable
from actors.events import TerminalEvents, TerminalWrite
from features.groups import group_by_route

log = logging.getLogger(__name__)
RETRY_EVERY_S = 1.0


@dataclass
class Ticket:
    """One batch's writes: none can be older than `earliest_ms`; `done` once every part
    (one per terminal shard) is applied."""

    number: int
    earliest_ms: int
    done: asyncio.Future[None] = field(repr=False)
    parts: int = 0


class TerminalWrites:
    """The terminal writes this process has queued or sent and not yet seen applied."""

    def __init__(self, shards: ShardClient, wait_s: float = 20.0) -> None:
        """`wait_s`: the longest a read waits for an earlier write (a terminal shard that
        does not come back fails the read itself). How long a write waits for a read to
        carry it is the client's `write_linger_s` (0 in process: nothing to save)."""
        self.shards, self.wait_s, self.linger_s = shards, wait_s, shards.write_linger_s
        self._open: dict[int, Ticket] = {}
        self._next = 0
        self._queued: dict[int, list[tuple[Ticket, TerminalWrite]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.retries = 0
        self.refused = 0  # rows a shard refused (never expected: logged)
        self.carried = 0  # writes that went with a read

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
            self._send_queued()
            await asyncio.wait(waits, timeout=self.wait_s)

    async def flush(self) -> None:
        """Wait until every write queued so far is applied (before a stream acknowledges
        its entries, and before labels are applied)."""
        waits = [t.done for t in self._open.values() if not t.done.done()]
        if waits:
            self._send_queued()
            await asyncio.wait(waits)

    def close(self, ticket: Ticket) -> None:
        """The ticket's batch writes nothing more (or wrote on its own answer path)."""
        self._open.pop(ticket.number, None)
        if not ticket.done.done():
            ticket.done.set_result(None)

    def send(self, ticket: Ticket, write: TerminalWrite) -> None:
        """Queue `write` for its terminal shards; the ticket closes once all of it is
        applied."""
        if not len(write):
            self.close(ticket)
            return
        groups = group_by_route(write.routes, self.shards.n_terminal_shards, self.shards.key_groups)
        ticket.parts = len(groups)
        for s, idx in groups.items():
            self._queued.setdefault(s, []).append((ticket, write.rows(idx)))
        if self.linger_s <= 0:
            self._send_queued()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.linger_s, self._send_queued)

    def take(self, shard: int) -> tuple[list[Ticket], TerminalWrite] | None:
        """What is queued for `shard`, for a read to carry ahead of its rows; the caller
        hands the request back with `carried`."""
        parts = self._queued.pop(shard, None)
        if not parts:
            return None
        return [t for t, _ in parts], TerminalWrite.joined([w for _, w in parts])

    def carried_by(
        self, tickets: list[Ticket], write: TerminalWrite, request: Awaitable[object]
    ) -> None:
        """`write` went in `request` (its rows first): settle its tickets when it answers."""
        self.carried += len(write)
        self._track(tickets, write, request)

    def _send_queued(self) -> None:
        """Send every queued write on its own (the linger ended, or a read must see one)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for shard in list(self._queued):
            taken = self.take(shard)
            if taken is not None:
                tickets, write = taken
                self._track(
                    tickets,
                    write,
                    self.shards.start_terminal_step(shard, TerminalEvents.writes(write)),
                )

    def _track(
        self, tickets: list[Ticket], write: TerminalWrite, request: Awaitable[object]
    ) -> None:
        task = asyncio.get_running_loop().create_task(self._settle(tickets, write, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(
        self, tickets: list[Ticket], write: TerminalWrite, request: Awaitable[object]
    ) -> None:
        """Wait for the request that holds `write`; while it failed, send the write alone
        again, routed afresh; then one part of each ticket is done."""
        try:
            failures: list[BaseException] = []
            try:
                await request
            except Exception as e:
                failures = [e]
            while failures:
                if not all(isinstance(f, ShardUnavailable | OSError) for f in failures):
                    self.refused += len(write)  # a shard refused it: retrying cannot help
                    log.error(
                        "terminal write of %d transactions refused: %s",
                        len(write), type(failures[0]).__name__,
                    )  # fmt: skip
                    return
                self.retries += 1
                await asyncio.sleep(RETRY_EVERY_S)
                groups = group_by_route(
                    write.routes, self.shards.n_terminal_shards, self.shards.key_groups
                )
                results = await asyncio.gather(
                    *(
                        self.shards.start_terminal_step(s, TerminalEvents.writes(write.rows(idx)))
                        for s, idx in groups.items()
                    ),
                    return_exceptions=True,
                )
                failures = [r for r in results if isinstance(r, BaseException)]
        finally:
            for ticket in tickets:
                ticket.parts -= 1
                if ticket.parts <= 0:
                    self.close(ticket)
