"""What a shard client offers the scoring pipeline, whoever carries the calls.

`RayShardClient` (Ray actors, over their sockets or Ray calls) and `LocalShardClient` (in
process) both satisfy `ShardClient`; the pipeline sees only this protocol, never routing
to actors, transports or retries.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from actors.errors import Unavailable
from actors.events import (
    CardAnswer,
    CardEvents,
    LinkAnswer,
    LinkEvents,
    TerminalAnswer,
    TerminalEvents,
    TerminalWrite,
)


class ShardUnavailable(Unavailable):
    """A shard did not answer within the retry budget, or its state store refused a write."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, retry_after_s=2)


class ShardClient(Protocol):
    """Card and terminal shards, addressed by shard number (`features.groups.shard_of`)."""

    n_user_shards: int
    n_terminal_shards: int
    key_groups: int
    label_delay_ms: int  # terminal windows end this long before a transaction (the engine's)
    write_linger_s: float  # how long a terminal write may wait for a read to carry it

    async def user_step(self, shard: int, events: CardEvents) -> CardAnswer:
        """`actors.actor.shards.UserShard.process` on one card shard. Each row's terminal write
        (`CardEvents.write`) is kept there for a while once the row is applied
        (`recent_writes`)."""
        ...

    async def recent_writes(self, shard: int, seconds: float) -> TerminalWrite:
        """The terminal writes of the transactions one card shard applied in the last
        `seconds` (a replica that starts sends them again: one that died may not have)."""
        ...

    async def terminal_step(self, shard: int, events: TerminalEvents) -> TerminalAnswer:
        """`actors.actor.shards.TerminalShard.process` on one terminal shard."""
        ...

    async def link_step(self, shard: int, events: LinkEvents) -> LinkAnswer:
        """`actors.actor.shards.TerminalShard.process_links` on one terminal shard (links
        share the terminal shards' key groups)."""
        ...

    def start_terminal_step(
        self, shard: int, events: TerminalEvents
    ) -> asyncio.Future[TerminalAnswer]:
        """`terminal_step` started now, for a caller that does not wait for it: its request
        is on the shard's socket before this returns when a connection is open (so it is
        ahead of this client's later requests there), and it is retried as `terminal_step`
        is. The future gives its answer."""
        ...

    async def stats(self) -> list[dict[str, Any]]:
        """Every shard's `stats()`."""
        ...

    async def ping(self, timeout_s: float = 2.0) -> bool:
        """Whether every shard answers within `timeout_s`."""
        ...
