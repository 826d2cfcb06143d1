"""The state a shard owns and the one method it exposes per direction of traffic.

A `UserShard` owns the cards whose stable hash maps to it, a `TerminalShard` the terminals.
Each runs the feature engine's store for its keys; neither holds any feature logic itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from features.config import EngineConfig
from features.state import TerminalStore, UserStore


class UserShard:
    """Card state for one shard: per-card rings of (time, amount, terminal)."""

    def __init__(self, shard: int, n_shards: int, config: dict[str, Any] | None = None) -> None:
        self.shard, self.n_shards = shard, n_shards
        self.config = EngineConfig(**(config or {}))
        self.store = UserStore(self.config.user_capacity)
        self.transactions = 0

    def process(
        self,
        user_ids: Sequence[str],
        times_ms: np.ndarray,
        amounts: np.ndarray,
        terminal_hashes: np.ndarray,
    ) -> np.ndarray:
        """User features of these transactions, in order; each then joins its card's state."""
        out = self.store.update(self.store.slots_for(user_ids), times_ms, amounts, terminal_hashes)
        self.transactions += len(user_ids)
        return out

    def stats(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "users": len(self.store),
            "transactions": self.transactions,
            "state_bytes": self.store.state_nbytes(),
            "overflow_events": self.store.overflow_total,
        }

    def ping(self) -> int:
        return self.shard


class TerminalShard:
    """Terminal state for one shard: per-terminal rings with labels as known so far."""

    def __init__(self, shard: int, n_shards: int, config: dict[str, Any] | None = None) -> None:
        self.shard, self.n_shards = shard, n_shards
        self.config = EngineConfig(**(config or {}))
        self.store = TerminalStore(self.config.terminal_capacity, self.config.label_delay_ms)
        self.transactions = 0
        self.labels = 0

    def process(
        self,
        kinds: np.ndarray,
        terminal_ids: Sequence[str],
        times_ms: np.ndarray,
        keys: np.ndarray,
        labels: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Transactions (kind 0) get terminal features; labels (kind 1) set a held label."""
        out = self.store.step(kinds, self.store.slots_for(terminal_ids), times_ms, keys, labels)
        n_labels = int(np.sum(kinds == 1))
        self.labels += n_labels
        self.transactions += len(kinds) - n_labels
        return out

    def stats(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "terminals": len(self.store),
            "transactions": self.transactions,
            "labels": self.labels,
            "state_bytes": self.store.state_nbytes(),
            "overflow_events": self.store.overflow_total,
        }

    def ping(self) -> int:
        return self.shard
