"""REVIEW decisions waiting for an analyst, oldest first, and the ones they resolved."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

OUTCOMES = ("fraud", "legit")


class AlreadyResolved(ValueError):
    """The review was resolved before with the other outcome."""


@dataclass
class ReviewQueue:
    max_resolved: int = 100_000
    open: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    resolved: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)

    def add(self, record: dict[str, Any]) -> bool:
        tx_id = record["transaction_id"]
        if tx_id in self.open or tx_id in self.resolved:
            return False
        self.open[tx_id] = {**record, "status": "open"}
        return True

    def get(self, tx_id: str) -> dict[str, Any] | None:
        return self.open.get(tx_id) or self.resolved.get(tx_id)

    def resolve(
        self, tx_id: str, outcome: str, analyst: str, note: str, at_ms: int
    ) -> tuple[dict[str, Any], bool]:
        """(the review, whether this call changed it). Resolving again the same way is a no-op;
        the other way raises `AlreadyResolved`; an unknown id raises KeyError."""
        if tx_id in self.resolved:
            item = self.resolved[tx_id]
            if item["status"] != outcome:
                raise AlreadyResolved(f"review {tx_id} was resolved as {item['status']}")
            return item, False
        # A new record, not the open one changed: the desk's checkpoints copy the queue
        # shallowly and encode it off the lock.
        item = {
            **self.open.pop(tx_id),  # KeyError: no such review
            "status": outcome, "analyst": analyst, "note": note, "resolved_ms": at_ms,
        }  # fmt: skip
        self.resolved[tx_id] = item
        while len(self.resolved) > self.max_resolved:
            self.resolved.popitem(last=False)
        return item, True

    def page(
        self,
        status: str = "open",
        limit: int = 50,
        offset: int = 0,
        min_score: float = 0.0,
        rule: str | None = None,
    ) -> list[dict[str, Any]]:
        """Oldest first. `status`: open, resolved, fraud or legit (resolved in resolution order)."""
        source = self.open.values() if status == "open" else self.resolved.values()
        out: list[dict[str, Any]] = []
        skipped = 0
        for item in source:
            if status in OUTCOMES and item["status"] != status:
                continue
            if item["score"] < min_score or (rule and rule not in (item.get("rules") or ())):
                continue
            if skipped < offset:
                skipped += 1
                continue
            out.append(item)
            if len(out) >= limit:
                break
        return out
