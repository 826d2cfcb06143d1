"""Recall-first thresholds: the seed's stated priority is that a missed fraud costs more
than a check on a genuine customer, so REVIEW is set to catch a target share of frauds,
and BLOCK (which stops a payment outright) only where it is nearly always right.

- REVIEW: the highest threshold whose recall on labelled data reaches `review_recall`;
  recall falls and false positives fall as the threshold rises, so the highest such
  threshold is the one with the fewest false positives.
- BLOCK: the lowest threshold, at or above REVIEW, whose precision reaches
  `block_precision` (the most frauds blocked at that precision); if none does, BLOCK only
  above every score seen (nothing blocked on this data).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from policy.decision import Thresholds


class RecallTarget(BaseModel):
    """`fraud train --review-recall --block-precision`: the rule behind served thresholds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    review_recall: float = Field(0.80, gt=0, le=1, description="Share of frauds flagged.")
    block_precision: float = Field(0.95, gt=0, le=1, description="Share of BLOCKs that are fraud.")


def recall_first_thresholds(y: np.ndarray, scores: np.ndarray, target: RecallTarget) -> Thresholds:
    """The REVIEW and BLOCK thresholds of the rule above, chosen on (y, scores).

    Candidates are 0 and the distinct scores themselves, in the scores' own dtype: a
    threshold equal to a score flags exactly the scores above it, compared in float32 or
    float64 alike (a threshold between two float32 scores would round onto one of them)."""
    y = np.asarray(y).astype(bool)
    scores = np.asarray(scores)
    if not y.any():
        raise ValueError("recall-first thresholds need at least one fraud in the labelled data")
    order = np.argsort(scores, kind="stable")
    ranked, fraud = scores[order], y[order]
    cands = np.concatenate([np.zeros(1, scores.dtype), np.unique(scores)])
    above = len(scores) - np.searchsorted(ranked, cands, side="right")  # scores > t
    frauds_above = np.concatenate([[0], np.cumsum(fraud[::-1])])[above]
    recall = frauds_above / y.sum()
    review = float(cands[np.flatnonzero(recall >= target.review_recall).max()])
    precision = np.where(above > 0, frauds_above / np.maximum(above, 1), 0.0)
    good = np.flatnonzero((precision >= target.block_precision) & (cands >= review))
    block = float(cands[good].min()) if len(good) else 1.0
    return Thresholds(review=review, block=block)  # block >= review: chosen among those
