"""Recent decisions by transaction id, the labels that arrived for them, and the outcome.

Bounded (oldest decisions leave first) so a long run holds a fixed amount of memory; a label
that arrives for a decision still held says whether the fraud was caught or missed, or
whether a flag was a false alarm.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from policy.decision import TIER_NAMES

# One held decision: (time_ms, amount, tier, score, model version, policy version,
# card digest, terminal digest, reasons or None, rules or None, recorded at ms,
# terminal key, transaction key) - ids only as hashes; the keys route a review's label.
Held = tuple[int, float, int, float, str, int, str, str, Any, Any, int, int, int]


def as_record(tx_id: str, h: Held) -> dict[str, Any]:
    return {
        "transaction_id": tx_id,
        "time_ms": h[0],
        "amount": h[1],
        "decision": TIER_NAMES[h[2]],
        "score": h[3],
        "model_version": h[4],
        "policy_version": h[5],
        "card": h[6],
        "terminal": h[7],
        "reasons": h[8],
        "rules": h[9],
        "recorded_ms": h[10],
        "terminal_key": h[11],
        "transaction_key": h[12],
    }


@dataclass
class Outcomes:
    """Labelled transactions by how they were decided."""

    frauds_caught: int = 0  # fraud, decided REVIEW or BLOCK
    frauds_missed: int = 0  # fraud, decided LEGIT
    false_alarms: int = 0  # legitimate, decided REVIEW or BLOCK
    confirmed_legit: int = 0  # legitimate, decided LEGIT
    unmatched: int = 0  # labels for decisions no longer (or never) held

    def add(self, is_fraud: bool, tier: int | None, sign: int = 1) -> None:
        if tier is None:
            self.unmatched += sign
        elif is_fraud:
            if tier > 0:
                self.frauds_caught += sign
            else:
                self.frauds_missed += sign
        elif tier > 0:
            self.false_alarms += sign
        else:
            self.confirmed_legit += sign


@dataclass
class DecisionLog:
    max_decisions: int = 200_000
    decisions: dict[str, Held] = field(default_factory=dict)  # in arrival order
    labels: dict[str, tuple[bool, str, int]] = field(default_factory=dict)
    outcomes: Outcomes = field(default_factory=Outcomes)
    # The held ids again, oldest first, for eviction: a plain dict's first key costs
    # O(entries deleted before it), and an OrderedDict costs ~2x a dict per insert.
    arrivals: deque[str] = field(default_factory=deque, repr=False)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Snapshots from before `arrivals` hold an OrderedDict and no deque."""
        if "arrivals" not in state:
            state["decisions"] = dict(state["decisions"])
            state["arrivals"] = deque(state["decisions"])
        self.__dict__.update(state)

    def __contains__(self, tx_id: str) -> bool:
        return tx_id in self.decisions

    def add(self, tx_id: str, held: Held) -> bool:
        """Hold a decision; False (and no change) if this id is already held."""
        if tx_id in self.decisions:
            return False
        self.add_new([tx_id], [held])
        return True

    def add_new(self, ids: list[str], held: list[Held]) -> None:
        """Hold decisions for ids not held yet and distinct (the caller checked): one dict
        update for the batch, then the oldest leave."""
        self.decisions.update(zip(ids, held, strict=True))
        self.arrivals.extend(ids)
        decisions, arrivals = self.decisions, self.arrivals
        while len(decisions) > self.max_decisions:  # tolerant of an id the caller repeated
            decisions.pop(arrivals.popleft(), None)

    def get(self, tx_id: str) -> dict[str, Any] | None:
        held = self.decisions.get(tx_id)
        if held is None:
            return None
        out = as_record(tx_id, held)
        label = self.labels.get(tx_id)
        out["label"] = (
            {"is_fraud": label[0], "source": label[1], "labelled_ms": label[2]} if label else None
        )
        return out

    def label(self, tx_id: str, is_fraud: bool, source: str, at_ms: int) -> bool:
        """Record a label (the latest wins); False if it changes nothing."""
        old = self.labels.get(tx_id)
        if old is not None and old[0] == is_fraud:
            return False
        held = self.decisions.get(tx_id)
        tier = held[2] if held is not None else None
        if old is not None:
            self.outcomes.add(old[0], tier, sign=-1)
        self.outcomes.add(is_fraud, tier)
        self.labels[tx_id] = (is_fraud, source, at_ms)
        return True

    def label_rows(self, offset: int, limit: int) -> list[dict[str, Any]]:
        """Labels in arrival order (dicts keep insertion order), for export."""
        rows = []
        for i, (tx_id, (is_fraud, source, at_ms)) in enumerate(self.labels.items()):
            if i < offset:
                continue
            if len(rows) >= limit:
                break
            rows.append(
                {"transaction_id": tx_id, "is_fraud": is_fraud, "source": source,
                 "labelled_ms": at_ms}
            )  # fmt: skip
        return rows
