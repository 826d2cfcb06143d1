"""A case as an analyst reads it: the decision, its review, the recent decisions of its card
and terminal, and each of its top features beside the card's own normal.

A reason's feature is compared with the card's normal (`features.normals`) where the card's
history determines it; `unusual` says the value lies outside the card's usual range (10th to
90th percentile of its earlier transactions). The console shows this and exports it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from features.normals import OWN, Normal


def assemble(found: dict[str, Any], normals: dict[str, Normal]) -> dict[str, Any]:
    """`found`: the desk's case (`Desk.case`); `normals`: the card's, by feature name."""
    tx = found["transaction"]
    compared = []
    for reason in tx.get("reasons") or []:
        normal = normals.get(reason["feature"])
        value = reason.get("value")
        unusual = (
            None
            if normal is None or value is None
            else bool(value < normal.low or value > normal.high)
        )
        compared.append({
            **reason,
            "own": reason["feature"] in OWN,  # the card's own history determines it
            "normal": asdict(normal) if normal else None,
            "unusual": unusual,
        })  # fmt: skip
    amount = normals.get("TX_AMOUNT")
    return {
        **found,
        "features": compared,
        "card_normal": {
            "transactions": amount.transactions if amount else 0,
            "features": {name: asdict(n) for name, n in normals.items()},
        },
    }
