"""The feature engine: stateless features plus the user and terminal stores.

Online, a card shard (`actors.actor.shards.UserShard`) calls `UserStore.update` and a
terminal shard calls `TerminalStore.step`, and the ingress calls `assemble`; offline,
`FeatureEngine` holds both stores in one process and `features.offline` drives it over
history. Same code either way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from features import kernels
from features.config import EngineConfig
from features.ids import OFFLINE, terminal_identity
from features.spec import (
    CARD_COLUMNS,
    MS_PER_DAY,
    MS_PER_HOUR,
    N_FEATURES,
    TERMINAL_COLUMNS,
    TRANSACTION_COLUMNS,
)
from features.state import TerminalStore, UserStore

TX = 0
LABEL = 1
READ = kernels.READ  # a transaction's terminal features, not recorded (the answer path's)


def stateless_features(times_ms: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """Amount, weekend (Sat/Sun) and night (hour <= 6), all in UTC: columns 0-2."""
    times_ms = np.asarray(times_ms, dtype=np.int64)
    days = times_ms // MS_PER_DAY
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    hour = (times_ms - days * MS_PER_DAY) // MS_PER_HOUR
    return np.column_stack([np.asarray(amounts, dtype=np.float64), weekday >= 5, hour <= 6]).astype(
        np.float64
    )


def assemble(stateless: np.ndarray, user: np.ndarray, terminal: np.ndarray) -> np.ndarray:
    """Put the three parts into model-input order (`features.spec.FEATURE_NAMES`)."""
    out = np.empty((stateless.shape[0], N_FEATURES), dtype=np.float64)
    out[:, TRANSACTION_COLUMNS] = stateless
    out[:, CARD_COLUMNS] = user
    out[:, TERMINAL_COLUMNS] = terminal
    return out


def terminal_hashes(terminal_ids: Sequence[str]) -> np.ndarray:
    """The 32-bit terminal identity a user's history records (from the id's one digest)."""
    keys = OFFLINE.keys_many(terminal_ids)[1]
    return terminal_identity(keys)


def first_card(times_ms: np.ndarray, amounts: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Card features of these transactions as if each were its card's first (`hashes`: each
    one's terminal identity). A degraded answer scores a card whose state did not answer in
    time as this: the model was trained on first transactions, while a whole group of
    missing values sends the committed model's trees down branches no training row took (it
    blocked 99.98 % of handbook transactions without card state; BENCHMARKS.md, "Degraded
    answers")."""
    users = UserStore(2)
    return users.update(
        users.slots_for([str(i) for i in range(len(times_ms))]),
        np.asarray(times_ms, np.int64),
        np.asarray(amounts, np.float64),
        np.asarray(hashes, np.int32),
    )


def first_terminal(times_ms: np.ndarray, label_delay_ms: int) -> np.ndarray:
    """Terminal features of transactions at these times as if each were its terminal's
    first: a terminal never seen (`first_card`'s reason, for a late terminal shard)."""
    fresh = [str(i) for i in range(len(times_ms))]
    return TerminalStore(2, label_delay_ms).read(fresh, np.asarray(times_ms, np.int64))


class FeatureEngine:
    """User and terminal state in one process: the offline driver and the tests use this."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        c = self.config
        self.users = UserStore(c.user_capacity, lateness_ms=c.lateness_ms)
        self.terminals = TerminalStore(
            c.terminal_capacity, c.label_delay_ms, lateness_ms=c.lateness_ms
        )

    def transact(
        self,
        user_ids: Sequence[str],
        terminal_ids: Sequence[str],
        times_ms: np.ndarray,
        amounts: np.ndarray,
        tx_keys: np.ndarray,
    ) -> np.ndarray:
        """Features of transactions given in arrival order; each then joins the state."""
        times_ms = np.asarray(times_ms, dtype=np.int64)
        amounts = np.asarray(amounts, dtype=np.float64)
        user = self.users.update(
            self.users.slots_for(user_ids), times_ms, amounts, terminal_hashes(terminal_ids)
        )
        n = len(times_ms)
        terminal, _ = self.terminals.step(
            np.zeros(n, np.int8),
            self.terminals.slots_for(terminal_ids),
            times_ms,
            np.asarray(tx_keys, dtype=np.int64),
            np.zeros(n, np.int8),
        )
        return assemble(stateless_features(times_ms, amounts), user, terminal)

    def label(
        self, terminal_ids: Sequence[str], tx_keys: np.ndarray, labels: np.ndarray
    ) -> np.ndarray:
        """Record labels (1 fraud, 0 legit) of earlier transactions; True where one was held."""
        n = len(terminal_ids)
        _, found = self.terminals.step(
            np.full(n, LABEL, np.int8),
            self.terminals.slots_for(terminal_ids),
            np.zeros(n, np.int64),
            np.asarray(tx_keys, dtype=np.int64),
            np.asarray(labels, dtype=np.int8),
        )
        return found
