"""Reason codes: the features that pushed a transaction's score up the most."""

from __future__ import annotations

from typing import Any

import numpy as np

from features.spec import FEATURE_NAMES

TOP_K = 3


def top_reasons(contribs: np.ndarray, x: np.ndarray, k: int = TOP_K) -> list[list[dict[str, Any]]]:
    """Per row, up to `k` features with the largest positive contributions, largest first.

    A contribution is in log-odds (TreeSHAP); features that lowered the score are not reasons.
    """
    if len(contribs) == 0:
        return []
    order = np.argsort(-contribs, axis=1, kind="stable")[:, :k]
    out = []
    for row, cols in enumerate(order):
        out.append([
            {
                "feature": FEATURE_NAMES[c],
                "value": float(x[row, c]),
                "contribution": round(float(contribs[row, c]), 4),
            }
            for c in cols
            if contribs[row, c] > 0
        ])  # fmt: skip
    return out
