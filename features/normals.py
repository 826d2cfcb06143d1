"""A card's own normal: what its features usually are, to set beside a case's values.

The card's earlier transactions (time, amount, terminal) are replayed through the offline
driver, the same engine the shards run, so each earlier transaction gets the card features
it had when it happened; a feature's normal is their median and its usual range the 10th
to 90th percentile. Only features of the card's own history have a normal here (the card's
windows, the transaction's amount and hour): a terminal's or a device's features depend on
other cards' transactions, which a card's history does not hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.config import EngineConfig
from features.offline import offline_features
from features.spec import FEATURES

# Features a card's own (time, amount, terminal) history determines.
OWN: tuple[str, ...] = tuple(
    s.name
    for s in FEATURES
    if s.entity == "card" or s.name in ("TX_AMOUNT", "TX_DURING_WEEKEND", "TX_DURING_NIGHT")
)


@dataclass(frozen=True)
class Past:
    """One earlier transaction of the card."""

    time_ms: int
    amount: float
    terminal: str  # the terminal's digest


@dataclass(frozen=True)
class Normal:
    median: float
    low: float  # 10th percentile
    high: float  # 90th percentile
    transactions: int  # how many earlier transactions it is the normal of


def card_normals(history: Sequence[Past], config: EngineConfig | None = None) -> dict[str, Normal]:
    """Each own feature's normal over `history` (empty below two transactions: one has no
    normal)."""
    if len(history) < 2:
        return {}
    frame = pd.DataFrame(
        {
            "transaction_id": [f"h{i}" for i in range(len(history))],
            "user_id": "card",
            "terminal_id": [p.terminal for p in history],
            "timestamp": pd.to_datetime([p.time_ms for p in history], unit="ms"),
            "amount": [p.amount for p in history],
        }
    )
    feats = offline_features(frame, config, use_labels=False)
    out: dict[str, Normal] = {}
    for name in OWN:
        values = feats[name].to_numpy(np.float64)
        values = values[~np.isnan(values)]
        if len(values):
            low, median, high = np.percentile(values, [10, 50, 90])
            out[name] = Normal(float(median), float(low), float(high), len(values))
    return out
