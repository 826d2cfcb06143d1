"""The audit log: who changed a rule, a list, a review or the served model, when, and
what it was before and after. Kept by the desk, journaled with the change it records (one
journal record holds both), so a change is never stored without its entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

UNKNOWN = "unknown"  # changes journaled before entries named their key


@dataclass
class AuditLog:
    entries: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        at_ms: int,
        key_id: str | None,
        action: str,
        target: str,
        before: Any,
        after: Any,
        comment: str = "",
    ) -> dict[str, Any]:
        entry = {
            "seq": len(self.entries) + 1,
            "at_ms": at_ms,
            "key_id": key_id or UNKNOWN,
            "action": action,
            "target": target,
            "before": before,
            "after": after,
            "comment": comment,
        }
        self.entries.append(entry)
        return entry

    def last(self, action: str) -> dict[str, Any] | None:
        return next((e for e in reversed(self.entries) if e["action"] == action), None)

    def page(self, offset: int, limit: int) -> dict[str, Any]:
        """Oldest first, from `offset`; `total` says how many there are."""
        return {"entries": self.entries[offset : offset + limit], "total": len(self.entries)}


def policy_summary(policy: dict[str, Any]) -> dict[str, Any]:
    """What an entry keeps of a policy version: its rules whole, its lists by size (list
    entries are keyed hashes, which say nothing to a reader)."""
    return {
        "version": policy["version"],
        "rules": policy["rules"],
        "list_sizes": {name: len(keys) for name, keys in policy["lists"].items()},
    }
