"""What a rule change would do to the newest decisions, before it is saved.

A deciding replica keeps its newest first answers in a ring (`RecentDecisions`): each row's
features, score, the model's tier, the card and terminal keys the lists match on, and the
transaction key a label is matched on. `preview` applies the policy in force and the
proposed one to those rows with the same `Policy.apply` the answer path runs, and compares:
decisions per tier under each, the rows whose decision changes (from -> to), each rule's
hits, and, among the rows whose label has arrived, frauds caught and false alarms.
`fraud backtest` does the same on a whole labelled history, offline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from policy.decision import TIER_NAMES
from policy.rules import Policy, rule_hits


@dataclass(frozen=True)
class Recent:
    """The ring's rows, oldest first."""

    x: np.ndarray  # features, model order
    scores: np.ndarray
    tiers: np.ndarray  # the model's tier (thresholds and fallback), before rules and lists
    users: np.ndarray  # card keys (lists)
    terminals: np.ndarray  # terminal keys (lists)
    tx_keys: np.ndarray  # what a label is matched on

    def __len__(self) -> int:
        return len(self.scores)


class RecentDecisions:
    """The newest `capacity` first answers of one replica. `add` only buffers (the answer
    path calls it); `flush` moves the buffered rows into the ring (the replica's report tick
    calls it every 0.5 s, and a read does first)."""

    def __init__(self, width: int, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._x = np.zeros((capacity, width), np.float64)
        self._scores = np.zeros(capacity, np.float64)
        self._tiers = np.zeros(capacity, np.int8)
        self._users = np.zeros(capacity, np.int64)
        self._terminals = np.zeros(capacity, np.int64)
        self._tx_keys = np.zeros(capacity, np.int64)
        self._at = self._filled = 0
        self._buffer: list[tuple[np.ndarray, ...]] = []

    def add(
        self,
        x: np.ndarray,
        scores: np.ndarray,
        tiers: np.ndarray,
        users: np.ndarray,
        terminals: np.ndarray,
        tx_keys: np.ndarray,
    ) -> None:
        self._buffer.append((x, scores, tiers, users, terminals, tx_keys))

    def flush(self) -> None:
        if not self._buffer:
            return
        columns = [np.concatenate(c)[-self.capacity :] for c in zip(*self._buffer, strict=True)]
        self._buffer.clear()
        n = len(columns[1])
        at = (self._at + np.arange(n)) % self.capacity
        targets: tuple[np.ndarray, ...] = (
            self._x, self._scores, self._tiers, self._users, self._terminals, self._tx_keys,
        )  # fmt: skip
        for target, column in zip(targets, columns, strict=True):
            target[at] = column
        self._at = int((self._at + n) % self.capacity)
        self._filled = min(self.capacity, self._filled + n)

    def rows(self) -> Recent:
        self.flush()
        order = (self._at - self._filled + np.arange(self._filled)) % self.capacity
        return Recent(
            self._x[order],
            self._scores[order],
            self._tiers[order],
            self._users[order],
            self._terminals[order],
            self._tx_keys[order],
        )


def _summary(final: np.ndarray, labelled: np.ndarray, fraud: np.ndarray) -> dict[str, Any]:
    flagged = final > 0
    return {
        "decisions": {name: int(np.sum(final == i)) for i, name in enumerate(TIER_NAMES)},
        "flag_rate": float(flagged.mean()) if len(final) else 0.0,
        "frauds_caught": int(np.sum(flagged & labelled & fraud)),
        "frauds_missed": int(np.sum(~flagged & labelled & fraud)),
        "false_alarms": int(np.sum(flagged & labelled & ~fraud)),
    }


def preview(
    current: Policy, proposed: Policy, recent: Recent, labels: Mapping[int, bool]
) -> dict[str, Any]:
    """Both policies over the same rows: summaries, the changes by (from, to), rule hits.
    `labels`: fraud or not by transaction key, for the rows whose label has arrived."""
    args = (recent.tiers, recent.x, recent.scores, recent.users, recent.terminals)
    now, now_fired = current.apply(*args)
    then, then_fired = proposed.apply(*args)
    keys = recent.tx_keys.tolist()
    labelled = np.fromiter((k in labels for k in keys), bool, len(keys))
    fraud = np.fromiter((labels.get(k, False) for k in keys), bool, len(keys))
    changes: dict[str, int] = {}
    for i in np.flatnonzero(now != then):
        step = f"{TIER_NAMES[now[i]]}->{TIER_NAMES[then[i]]}"
        changes[step] = changes.get(step, 0) + 1
    return {
        "rows": len(recent),
        "labelled": int(labelled.sum()),
        "current": {**_summary(now, labelled, fraud), "version": current.version},
        "proposed": _summary(then, labelled, fraud),
        "changed": int(np.sum(now != then)),
        "changes": changes,
        "rules": {
            "current": rule_hits(now_fired, now, then),
            "proposed": rule_hits(then_fired, then, now),
        },
    }
