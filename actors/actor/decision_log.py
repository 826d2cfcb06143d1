"""Recent decisions by transaction id, the labels that arrived for them, and the outcome.

Bounded (oldest decisions leave first) so a long run holds a fixed amount of memory; a label
that arrives for a decision still held says whether the fraud was caught or missed, or
whether a flag was a false alarm.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any, Final, NamedTuple

import numpy as np

from policy.decision import TIER_NAMES


class Held(NamedTuple):
    """One held decision, by field name. Ids only as hashes; the keys route a review's label.

    The log stores each as a plain `HeldRow` in this field order and names it on the way out
    (`Held._make`): CPython's collector untracks a plain tuple of numbers and strings, but
    never a tuple subclass, and the log holds up to `max_decisions` of them, so rows of
    `Held` itself would be walked by every full collection."""

    time_ms: int
    amount: float
    tier: int
    score: float
    model_version: str
    policy_version: int
    card: str  # the card id's digest
    terminal: str  # the terminal id's digest
    reasons: list[dict[str, Any]] | None
    rules: list[str] | None
    recorded_ms: int
    terminal_key: int
    transaction_key: int


HeldRow = tuple[int, float, int, float, str, int, str, str, Any, Any, int, int, int]
TIER: Final = 2  # a row's tier, read on the desk's hot path without naming the row
assert Held._fields[TIER] == "tier"


def as_record(tx_id: str, row: HeldRow) -> dict[str, Any]:
    """The JSON form of a held decision (`GET /v1/transactions/{id}`, reviews)."""
    out = Held._make(row)._asdict()
    out["decision"] = TIER_NAMES[out.pop("tier")]
    return {"transaction_id": tx_id, **out}


ARRAY_FIELDS: Final = ("time_ms", "amount", "tier", "score", "terminal_key", "tx_key", "duplicate")


@dataclass
class DecidedBatch:
    """A scored batch as the pipeline hands it to the desk, column by column (one row per
    transaction that was not a conflict). Ids are redacted or digests, never raw card ids."""

    ids: list[str]  # transaction ids, card numbers in them redacted
    time_ms: np.ndarray
    amount: np.ndarray
    tier: np.ndarray
    score: np.ndarray
    version: str  # the model that scored
    policy_version: int  # the policy that decided, not the newest
    user: list[str]  # card id digests
    terminal: list[str]  # terminal id digests
    terminal_key: np.ndarray
    tx_key: np.ndarray
    duplicate: np.ndarray  # retries of transactions already decided
    reasons: dict[int, list[dict[str, Any]]]  # by row, flagged rows only
    rules: dict[int, list[str]]  # by row, rows where a rule fired
    # by row, rows answered without some state: why (outbox records before it have none)
    degraded: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def to_record(self) -> dict[str, Any]:
        """Plain values and arrays for `actors.store.records` (a store holds it)."""
        form = {f.name: getattr(self, f.name) for f in fields(self)}
        form["reasons"] = sorted(self.reasons.items())
        form["rules"] = sorted(self.rules.items())
        form["degraded"] = sorted(self.degraded.items())
        return form

    @classmethod
    def from_record(cls, form: dict[str, Any]) -> DecidedBatch:
        """The batch `to_record` described; a field missing or of the wrong kind raises."""
        arrays = {name: np.asarray(form[name]) for name in ARRAY_FIELDS}
        return cls(
            ids=[str(v) for v in form["ids"]],
            version=str(form["version"]),
            policy_version=int(form["policy_version"]),
            user=[str(v) for v in form["user"]],
            terminal=[str(v) for v in form["terminal"]],
            reasons={int(i): list(r) for i, r in form["reasons"]},
            rules={int(i): [str(v) for v in r] for i, r in form["rules"]},
            degraded={int(i): str(r) for i, r in form.get("degraded", [])},
            **arrays,
        )


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
    decisions: dict[str, HeldRow] = field(default_factory=dict)  # in arrival order
    labels: dict[str, tuple[bool, str, int]] = field(default_factory=dict)
    outcomes: Outcomes = field(default_factory=Outcomes)
    # The held ids again, oldest first, for eviction: a plain dict's first key costs
    # O(entries deleted before it), and an OrderedDict costs ~2x a dict per insert.
    arrivals: deque[str] = field(default_factory=deque, repr=False)

    def __contains__(self, tx_id: str) -> bool:
        return tx_id in self.decisions

    def add(self, tx_id: str, held: HeldRow) -> bool:
        """Hold a decision; False (and no change) if this id is already held."""
        if tx_id in self.decisions:
            return False
        self.add_new([tx_id], [held])
        return True

    def add_new(self, ids: list[str], held: list[HeldRow]) -> None:
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
        return {**as_record(tx_id, held), "label": self.label_of(tx_id)}

    def label_of(self, tx_id: str) -> dict[str, Any] | None:
        """The label received for this id (held decision or not), or None."""
        label = self.labels.get(tx_id)
        return (
            {"is_fraud": label[0], "source": label[1], "labelled_ms": label[2]} if label else None
        )

    def label(self, tx_id: str, is_fraud: bool, source: str, at_ms: int) -> bool:
        """Record a label (the latest wins); False if it changes nothing."""
        old = self.labels.get(tx_id)
        if old is not None and old[0] == is_fraud:
            return False
        held = self.decisions.get(tx_id)
        tier = held[TIER] if held is not None else None
        if old is not None:
            self.outcomes.add(old[0], tier, sign=-1)
        self.outcomes.add(is_fraud, tier)
        self.labels[tx_id] = (is_fraud, source, at_ms)
        return True

    def related(
        self, tx_id: str, card_limit: int, terminal_limit: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The held decisions of this one's card and of its terminal, itself left out,
        newest first, with their labels: one walk back from the newest held decision (an
        analyst's read; it costs up to `max_decisions` steps, about 10 ms at 200,000)."""
        held = self.decisions.get(tx_id)
        if held is None:
            return [], []
        card, terminal = held[6], held[7]
        cards: list[dict[str, Any]] = []
        terminals: list[dict[str, Any]] = []
        for other, row in reversed(self.decisions.items()):
            if len(cards) >= card_limit and len(terminals) >= terminal_limit:
                break
            if other == tx_id:
                continue
            if row[6] == card and len(cards) < card_limit:
                cards.append({**as_record(other, row), "label": self.label_of(other)})
            if row[7] == terminal and len(terminals) < terminal_limit:
                terminals.append({**as_record(other, row), "label": self.label_of(other)})
        return cards, terminals

    def labels_by_key(self, keys: list[int]) -> dict[int, bool]:
        """Fraud or not by transaction key, for the held decisions among `keys` whose label
        has arrived (what a rule change's preview counts)."""
        wanted, out = set(keys), {}
        for tx_id, (is_fraud, _, _) in self.labels.items():
            row = self.decisions.get(tx_id)
            if row is not None and row[-1] in wanted:
                out[int(row[-1])] = is_fraud
        return out

    def label_rows(self, offset: int, limit: int) -> list[dict[str, Any]]:
        """Labels in arrival order (dicts keep insertion order), for export."""
        rows: list[dict[str, Any]] = []
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
