"""Group concurrent single-transaction requests into one pipeline call per tick.

Every request costs a hop to each shard and to the model; under concurrency the ingress
holds many small requests at once. While fewer than `max_in_flight` groups are out, a
request goes at once (no added latency); otherwise newcomers wait for a group to return (at
most `max_wait_s`, or until `max_transactions` are waiting) and then go together: one call
per shard and one model call for the whole group. The group size follows the load (group
commit): the slower a round trip, the more requests it carries. Order is kept (a card's
requests stay in arrival order) and each request gets exactly its own answers, conflicts
and errors.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from deployments.scoring import stages

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[Sequence[T], float | None], Awaitable[list[R]]],
        max_wait_s: float = 0.02,
        max_transactions: int = 512,
        max_in_flight: int = 1,
    ) -> None:
        self._run = run
        self.max_wait_s, self.max_transactions = max_wait_s, max_transactions
        self.max_in_flight = max_in_flight
        # (items, deadline, answer): a group is due by its earliest request's deadline
        self._pending: list[tuple[Sequence[T], float | None, asyncio.Future[list[R]]]] = []
        self._first: contextvars.Context | None = None  # the waiting group's first request
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._in_flight = 0
        self.flushes = 0
        self.requests = 0

    async def submit(self, items: Sequence[T], deadline: float | None = None) -> list[R]:
        """These items' results, in order; `deadline` (the loop's clock) goes to `run`."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[R]] = loop.create_future()
        if not self._pending:  # the group runs in its first request's context (its stages)
            self._first = contextvars.copy_context()
        self._pending.append((items, deadline, future))
        self._size += len(items)
        if (
            self._in_flight < self.max_in_flight
            or self._size >= self.max_transactions
            or self.max_wait_s <= 0
        ):
            self._flush_now()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait_s, self._flush_now)
        return await future

    def _flush_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        group, self._pending, self._size = self._pending, [], 0
        if group:
            self._in_flight += 1
            asyncio.get_running_loop().create_task(self._flush(group), context=self._first)

    async def _flush(
        self, group: list[tuple[Sequence[T], float | None, asyncio.Future[list[R]]]]
    ) -> None:
        stages.mark("queue")
        self.flushes += 1
        self.requests += len(group)
        items = [x for part, _, _ in group for x in part]
        deadlines = [d for _, d, _ in group if d is not None]
        try:
            results = await self._run(items, min(deadlines) if deadlines else None)
        except Exception as e:  # every request of the group fails the same way
            for _, _, future in group:
                if not future.done():
                    future.set_exception(e)
            return
        finally:
            self._in_flight -= 1
            if self._pending and self._in_flight < self.max_in_flight:
                self._flush_now()  # what gathered meanwhile goes now
        start = 0
        for part, _, future in group:
            if not future.done():
                future.set_result(results[start : start + len(part)])
            start += len(part)

    def stats(self) -> dict[str, Any]:
        return {
            "flushes": self.flushes,
            "requests": self.requests,
            "requests_per_flush": self.requests / self.flushes if self.flushes else 0.0,
        }
