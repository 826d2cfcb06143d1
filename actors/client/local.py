"""In-process shards behind the same `ShardClient` protocol as `RayShardClient`.

The scoring pipeline is tested with these (no Ray); state semantics are identical because
the shard classes are the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from actors.actor.decision_log import DecidedBatch
from actors.actor.desk import Desk
from actors.actor.journal import ShardSettings
from actors.actor.layout import Kind, ensure_layout
from actors.actor.shards import SHARDS, KeyedShard, TerminalShard, UserShard
from actors.client.desk import DeskClient, local_call
from actors.events import (
    CardAnswer,
    CardEvents,
    LinkAnswer,
    LinkEvents,
    TerminalAnswer,
    TerminalEvents,
    TerminalWrite,
)
from actors.paths import REPO_ROOT
from actors.store.backends import StateStore


class LocalShardClient:
    """Shards and a desk in this process, on one store. `sink` records every batch at once
    (there is no report loop in process)."""

    def __init__(
        self,
        n_user_shards: int,
        n_terminal_shards: int,
        settings: ShardSettings | dict[str, Any] | None = None,
        store: StateStore | None = None,
    ) -> None:
        self.settings = (
            settings if isinstance(settings, ShardSettings) else ShardSettings(**(settings or {}))
        )
        self.key_groups = self.settings.key_groups
        self.label_delay_ms = self.settings.engine.label_delay_ms
        self.write_linger_s = 0.0  # in process a write costs no message: none waits
        self.store = store or self.settings.state.open(REPO_ROOT)
        self.users: list[UserShard] = []
        self.terminals: list[TerminalShard] = []
        self.rescale(n_user_shards, n_terminal_shards)
        self.desk_state = Desk(0, 1, self.settings, self.store)
        self.desk = DeskClient(local_call(self.desk_state))
        self.sink = self  # `DecisionSink`

    def rescale(self, n_user_shards: int, n_terminal_shards: int) -> None:
        """Own the state with these shard counts, moving key groups from the layout the
        store names if it differs (`actors.actor.layout.ensure_layout`)."""
        self.users = cast(list[UserShard], self._move("user", n_user_shards, self.users))
        self.terminals = cast(
            list[TerminalShard], self._move("terminal", n_terminal_shards, self.terminals)
        )
        self.n_user_shards, self.n_terminal_shards = n_user_shards, n_terminal_shards

    def _move(self, kind: Kind, n: int, live: Sequence[KeyedShard]) -> list[KeyedShard]:
        made: dict[tuple[int, int], KeyedShard] = {(s.shard, s.n_shards): s for s in live}

        def shard(i: int, n_shards: int) -> KeyedShard:
            if (i, n_shards) not in made:
                made[i, n_shards] = SHARDS[kind](i, n_shards, self.settings, self.store)
            return made[i, n_shards]

        def call(i: int, n_shards: int, method: str, *args: Any) -> Any:
            return getattr(shard(i, n_shards), method)(*args)

        ensure_layout(self.store, kind, n, self.key_groups, call)
        return [shard(i, n) for i in range(n)]

    async def record(self, batch: DecidedBatch, wait: bool) -> None:
        self.desk_state.record(batch)

    async def user_step(self, shard: int, events: CardEvents) -> CardAnswer:
        return self.users[shard].process(events)

    async def recent_writes(self, shard: int, seconds: float) -> TerminalWrite:
        return self.users[shard].recent_writes(seconds)

    async def terminal_step(self, shard: int, events: TerminalEvents) -> TerminalAnswer:
        return self.terminals[shard].process(events)

    async def link_step(self, shard: int, events: LinkEvents) -> LinkAnswer:
        return self.terminals[shard].process_links(events)

    def start_terminal_step(
        self, shard: int, events: TerminalEvents
    ) -> asyncio.Future[TerminalAnswer]:
        """Applied before this returns (in process there is nothing to wait for)."""
        done: asyncio.Future[TerminalAnswer] = asyncio.get_running_loop().create_future()
        try:
            done.set_result(self.terminals[shard].process(events))
        except Exception as e:  # the caller awaits it
            done.set_exception(e)
        return done

    async def stats(self) -> list[dict[str, Any]]:
        return [*(s.stats() for s in self.users), *(s.stats() for s in self.terminals)]

    async def ping(self, timeout_s: float = 2.0) -> bool:
        return True
