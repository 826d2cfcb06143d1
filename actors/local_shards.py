"""In-process shards behind the same interface as `RayShardClient`.

The scoring pipeline is tested with these (no Ray), and a single-process deployment could
use them; state semantics are identical because the shard classes are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from actors.shards import TerminalShard, UserShard


class LocalShardClient:
    def __init__(
        self, n_user_shards: int, n_terminal_shards: int, config: dict[str, Any] | None = None
    ) -> None:
        self.n_user_shards, self.n_terminal_shards = n_user_shards, n_terminal_shards
        self.users = [UserShard(i, n_user_shards, config) for i in range(n_user_shards)]
        self.terminals = [
            TerminalShard(i, n_terminal_shards, config) for i in range(n_terminal_shards)
        ]

    async def user_step(
        self,
        shard: int,
        user_ids: Sequence[str],
        times: np.ndarray,
        amounts: np.ndarray,
        terminal_hashes: np.ndarray,
    ) -> np.ndarray:
        return self.users[shard].process(user_ids, times, amounts, terminal_hashes)

    async def terminal_step(
        self,
        shard: int,
        kinds: np.ndarray,
        terminal_ids: Sequence[str],
        times: np.ndarray,
        keys: np.ndarray,
        labels: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.terminals[shard].process(kinds, terminal_ids, times, keys, labels)

    async def stats(self) -> list[dict[str, Any]]:
        return [s.stats() for s in (*self.users, *self.terminals)]

    async def ping(self, timeout_s: float = 2.0) -> bool:
        return True
