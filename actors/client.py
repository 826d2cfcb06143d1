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
from features.engine import LABEL, READ, TX


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

    def rows(self, idx: np.ndarray) -> TerminalWrite:
        """These rows of the write."""
        return TerminalWrite(
            self.routes[idx], [self.terminal_keys[i] for i in idx.tolist()], self.times[idx],
            self.tx_keys[idx],
        )  # fmt: skip

    @classmethod
    def joined(cls, writes: list[TerminalWrite]) -> TerminalWrite:
        """Several writes as one, in order."""
        if len(writes) == 1:
            return writes[0]
        return cls(
            np.concatenate([w.routes for w in writes]),
            [k for w in writes for k in w.terminal_keys],
            np.concatenate([w.times for w in writes]), np.concatenate([w.tx_keys for w in writes]),
        )  # fmt: skip


@dataclass(frozen=True)
class TerminalEvents:
    """One request to a terminal shard, in order (columns, one row each): transactions
    (`TX`) and labels (`LABEL`) to apply, then reads (`READ`) that change nothing."""

    kinds: np.ndarray  # int8: features.engine.TX, LABEL or READ
    terminal_keys: list[str]
    times: np.ndarray  # int64 ms; a label's is unused
    tx_keys: np.ndarray  # int64: the transaction each row records, labels or reads
    labels: np.ndarray  # int8: a label's value

    def __len__(self) -> int:
        return len(self.kinds)

    @classmethod
    def writes(cls, write: TerminalWrite) -> TerminalEvents:
        n = len(write)
        return cls(
            np.full(n, TX, np.int8), write.terminal_keys, write.times, write.tx_keys,
            np.zeros(n, np.int8),
        )  # fmt: skip

    @classmethod
    def reads(cls, keys: list[str], times: np.ndarray, tx_keys: np.ndarray) -> TerminalEvents:
        n = len(keys)
        return cls(np.full(n, READ, np.int8), keys, times, tx_keys, np.zeros(n, np.int8))

    @classmethod
    def marks(cls, keys: list[str], tx_keys: np.ndarray, values: np.ndarray) -> TerminalEvents:
        """Labels: set the fraud flag of each transaction to its value."""
        n = len(keys)
        return cls(
            np.full(n, LABEL, np.int8), keys, np.zeros(n, np.int64), tx_keys,
            np.asarray(values, np.int8),
        )  # fmt: skip

    def then(self, other: TerminalEvents) -> TerminalEvents:
        """These rows, then `other`'s, as one request."""
        return TerminalEvents(
            np.concatenate([self.kinds, other.kinds]), self.terminal_keys + other.terminal_keys,
            np.concatenate([self.times, other.times]),
            np.concatenate([self.tx_keys, other.tx_keys]),
            np.concatenate([self.labels, other.labels]),
        )  # fmt: skip

    def columns(self) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray, np.ndarray]:
        """`actors.shards.TerminalShard.process`'s arguments (and the wire's items)."""
        return self.kinds, self.terminal_keys, self.times, self.tx_keys, self.labels


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
        self, shard: int, events: TerminalEvents
    ) -> tuple[np.ndarray, np.ndarray]:
        """`actors.shards.TerminalShard.process` on one terminal shard: (terminal features
        per row, whether each label's transaction was held, or each read's applied)."""
        ...

    def start_terminal_step(
        self, shard: int, events: TerminalEvents
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
