"""In-process shards behind the same `ShardClient` protocol as `RayShardClient`.

The scoring pipeline is tested with these (no Ray); state semantics are identical because
the shard classes are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from actors.decision_log import DecidedBatch
from actors.desk import Desk
from actors.desk_client import DeskClient, local_call
from actors.journal import ShardSettings
from actors.shards import TerminalShard, UserShard
from actors.state_store import StateStore


class LocalShardClient:
    """Shards and a desk in this process. `sink` records every batch at once (there is no
    report loop in process)."""

    def __init__(
        self,
        n_user_shards: int,
        n_terminal_shards: int,
        settings: ShardSettings | dict[str, Any] | None = None,
        store: StateStore | None = None,
    ) -> None:
        self.n_user_shards, self.n_terminal_shards = n_user_shards, n_terminal_shards
        self.users = [UserShard(i, n_user_shards, settings, store) for i in range(n_user_shards)]
        self.terminals = [
            TerminalShard(i, n_terminal_shards, settings, store) for i in range(n_terminal_shards)
        ]
        self.desk_state = Desk(0, 1, settings, store)
        self.desk = DeskClient(local_call(self.desk_state))
        self.sink = self  # `DecisionSink`

    async def record(self, batch: DecidedBatch, wait: bool) -> None:
        self.desk_state.record(batch)

    async def user_step(
        self,
        shard: int,
        tx_keys: Sequence[str],
        body_hashes: np.ndarray,
        user_keys: Sequence[str],
        times_ms: np.ndarray,
        amounts: np.ndarray,
        terminal_hashes: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.users[shard].process(
            tx_keys, body_hashes, user_keys, times_ms, amounts, terminal_hashes
        )

    async def terminal_step(
        self,
        shard: int,
        kinds: np.ndarray,
        terminal_keys: Sequence[str],
        times_ms: np.ndarray,
        tx_keys: np.ndarray,
        labels: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.terminals[shard].process(kinds, terminal_keys, times_ms, tx_keys, labels)

    async def stats(self) -> list[dict[str, Any]]:
        return [*(s.stats() for s in self.users), *(s.stats() for s in self.terminals)]

    async def ping(self, timeout_s: float = 2.0) -> bool:
        return True
