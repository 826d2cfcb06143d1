"""What a shard client offers the scoring pipeline, whoever carries the calls.

`RayShardClient` (Ray actors, over their sockets or Ray calls) and `LocalShardClient` (in
process) both satisfy `ShardClient`; the pipeline sees only this protocol, never routing
to actors, transports or retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from actors.errors import Unavailable


class ShardUnavailable(Unavailable):
    """A shard did not answer within the retry budget, or its state store refused a write."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, retry_after_s=2)


@dataclass(frozen=True)
class TerminalWrite:
    """Transactions to record in their terminals' state (columns, one row each)."""

    routes: np.ndarray  # 64-bit keys of the terminal ids: where each row goes
    terminal_keys: list[str]  # the terminal digests that stand for them in state
    times: np.ndarray
    tx_keys: np.ndarray  # the 64-bit transaction keys labels are matched on

    def __len__(self) -> int:
        return len(self.times)


class ShardClient(Protocol):
    """Card and terminal shards, addressed by shard number (`features.groups.shard_of`)."""

    n_user_shards: int
    n_terminal_shards: int
    key_groups: int
    label_delay_ms: int  # terminal windows end this long before a transaction (the engine's)
    write_linger_s: float  # how long a terminal write may wait for a read to carry it

    async def user_step(
        self,
        shard: int,
        tx_keys: Sequence[str],
        body_hashes: np.ndarray,
        user_keys: Sequence[str],
        times_ms: np.ndarray,
        amounts: np.ndarray,
        terminal_hashes: np.ndarray,
        write: TerminalWrite,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`actors.shards.UserShard.process` on one card shard: (card features per row,
        `actors.dedup.Seen` status per row). `write`: each row's terminal write, which the
        card shard keeps for a while once it applied the row (`recent_writes`)."""
        ...

    async def recent_writes(self, shard: int, seconds: float) -> TerminalWrite:
        """The terminal writes of the transactions one card shard applied in the last
        `seconds` (a replica that starts sends them again: one that died may not have)."""
        ...

    async def terminal_step(
        self,
        shard: int,
        kinds: np.ndarray,
        terminal_keys: Sequence[str],
        times_ms: np.ndarray,
        tx_keys: np.ndarray,
        labels: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`actors.shards.TerminalShard.process` on one terminal shard: (terminal features
        per row, whether each label's transaction was held)."""
        ...

    def start_terminal_step(
        self,
        shard: int,
        kinds: np.ndarray,
        terminal_keys: Sequence[str],
        times_ms: np.ndarray,
        tx_keys: np.ndarray,
        labels: np.ndarray,
    ) -> asyncio.Future[tuple[np.ndarray, np.ndarray]]:
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
