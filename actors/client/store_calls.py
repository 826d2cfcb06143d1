"""A replica's calls to the state store from its event loop, in the order they are made.

Why not always a thread: a hop to a thread and back costs 80-100 us on an idle machine and
more on a busy one, and every answer waits for one append (the decision record's; a flagged
one's outbox). A store whose appends are quick (`StateStore.quick_appends`: SQLite without
fsync, ~20 us; memory) takes them on the loop itself; a store behind a network or a disk
flush (Redis, SQLite with `fsync`), and every other call (loads, checkpoints, listings),
runs on one thread of the caller's own, so the loop never waits on them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from actors.store.backends import StateStore

T = TypeVar("T")


class StoreCalls:
    """Appends and other calls to one store for one writer (its journal names)."""

    def __init__(self, store: StateStore, thread_name: str) -> None:
        self.store = store
        self.inline = bool(getattr(store, "quick_appends", False))
        # One thread: calls that go there keep their order among themselves.
        self._io = ThreadPoolExecutor(1, thread_name_prefix=thread_name)

    async def append(self, journal: str, seq: int, record: bytes) -> None:
        """Make one record durable (`StateStore.append`); raises what it raises."""
        if self.inline:
            self.store.append(journal, seq, record)
        else:
            await self.call(self.store.append, journal, seq, record)

    async def call(self, method: Callable[..., T], *args: Any) -> T:
        """Any other store call, on the thread."""
        return await asyncio.get_running_loop().run_in_executor(self._io, method, *args)

    def wait(self, job: Callable[[], T], timeout_s: float) -> T:
        """Run `job` on the thread and wait for it here (a stopping replica's last work)."""
        return self._io.submit(job).result(timeout=timeout_s)

    def close(self) -> None:
        self._io.shutdown(wait=False)
