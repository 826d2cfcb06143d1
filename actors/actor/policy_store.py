"""Every version of the rules and lists; the newest is the one in force."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policy.rules import LIST_NAMES


@dataclass
class PolicyStore:
    versions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def version(self) -> int:
        return self.versions[-1]["version"] if self.versions else 0

    def current(self) -> dict[str, Any]:
        """{version, rules, lists (name -> sorted int64 keys)}: what the ingress compiles."""
        if not self.versions:
            return {
                "version": 0,
                "rules": [],
                "lists": {n: np.empty(0, np.int64) for n in LIST_NAMES},
            }
        return self.versions[-1]

    def put(
        self, rules: list[dict[str, Any]], lists: dict[str, np.ndarray], comment: str, at_ms: int
    ) -> int:
        version = self.version + 1
        self.versions.append(
            {"version": version, "rules": rules, "lists": lists, "comment": comment,
             "created_ms": at_ms}
        )  # fmt: skip
        return version

    def get(self, version: int) -> dict[str, Any] | None:
        return next((v for v in self.versions if v["version"] == version), None)

    def history(self) -> list[dict[str, Any]]:
        return [
            {
                "version": v["version"],
                "created_ms": v["created_ms"],
                "comment": v["comment"],
                "rules": [r["id"] for r in v["rules"]],
                "list_sizes": {n: len(k) for n, k in v["lists"].items()},
            }
            for v in self.versions
        ]
