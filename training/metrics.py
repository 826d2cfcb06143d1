"""The handbook's performance measures plus decision-threshold rates."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score


def card_precision_at_k(frame: pd.DataFrame, scores: np.ndarray, k: int = 100) -> float:
    """Mean over days of the share of compromised cards among the day's k riskiest cards.

    A card's daily score is its highest transaction score. Cards found compromised on an
    earlier test day are removed from later days (the book's `card_precision_top_k`).
    """
    df = pd.DataFrame(
        {
            "day": frame["timestamp"].dt.normalize().to_numpy(),
            "user_id": frame["user_id"].to_numpy(),
            "is_fraud": frame["is_fraud"].to_numpy(),
            "score": scores,
        }
    )
    detected: set[object] = set()
    per_day = []
    for _, day in df.groupby("day", sort=True):
        day = day[~day["user_id"].isin(detected)]
        cards = day.groupby("user_id")[["score", "is_fraud"]].max()
        top = cards.sort_values("score", ascending=False, kind="stable").head(k)
        hits = top.index[top["is_fraud"] == 1]
        per_day.append(len(hits) / k)
        detected |= set(hits.tolist())
    return float(np.mean(per_day)) if per_day else float("nan")


def threshold_rates(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Recall, precision and false-positive rate of flagging scores above `threshold`."""
    flagged = scores > threshold
    tp = int(np.sum(flagged & (y == 1)))
    fp = int(np.sum(flagged & (y == 0)))
    pos, neg = int(np.sum(y == 1)), int(np.sum(y == 0))
    return {
        "threshold": threshold,
        "recall": tp / pos if pos else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "false_positive_rate": fp / neg if neg else float("nan"),
        "flag_rate": float(np.mean(flagged)) if len(y) else float("nan"),
    }


def evaluate_scores(
    frame: pd.DataFrame,
    scores: np.ndarray,
    review: float = 0.5,
    block: float = 0.9,
) -> dict[str, object]:
    """AUC, AP, CP@100 and the REVIEW / BLOCK operating points for one scored set."""
    y = frame["is_fraud"].to_numpy().astype(int)
    both = 0 < y.sum() < len(y)
    return {
        "n_transactions": len(y),
        "n_frauds": int(y.sum()),
        "auc": float(roc_auc_score(y, scores)) if both else float("nan"),
        "average_precision": float(average_precision_score(y, scores)) if both else float("nan"),
        "card_precision_at_100": card_precision_at_k(frame, scores, 100),
        "review": threshold_rates(y, scores, review),
        "block": threshold_rates(y, scores, block),
    }
