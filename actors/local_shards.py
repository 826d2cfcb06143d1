"""In-process shards behind the same interface as `RayShardClient`.

The scoring pipeline is tested with these (no Ray); state semantics are identical because
the shard classes are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from actors.desk import Desk
from actors.shards import TerminalShard, UserShard
from actors.state_store import StateStore


class LocalShardClient:
    def __init__(
        self,
        n_user_shards: int,
        n_terminal_shards: int,
        settings: dict[str, Any] | None = None,
        store: StateStore | None = None,
    ) -> None:
        self.n_user_shards, self.n_terminal_shards = n_user_shards, n_terminal_shards
        self.users = [UserShard(i, n_user_shards, settings, store) for i in range(n_user_shards)]
        self.terminals = [
            TerminalShard(i, n_terminal_shards, settings, store) for i in range(n_terminal_shards)
        ]
        self.desk_state = Desk(0, 1, settings, store)

    async def desk(self, method: str, *args: Any) -> Any:
        return getattr(self.desk_state, method)(*args)

    async def record(self, batch: dict[str, Any], wait: bool) -> None:
        self.desk_state.record(batch)

    async def user_step(self, shard: int, *args: Any) -> tuple[np.ndarray, np.ndarray]:
        return self.users[shard].process(*args)

    async def terminal_step(
        self,
        shard: int,
        kinds: np.ndarray,
        terminal_keys: Sequence[str],
        times: np.ndarray,
        keys: np.ndarray,
        labels: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.terminals[shard].process(kinds, terminal_keys, times, keys, labels)

    async def stats(self) -> list[dict[str, Any]]:
        return [s.stats() for s in (*self.users, *self.terminals)]

    async def ping(self, timeout_s: float = 2.0) -> bool:
        return True
