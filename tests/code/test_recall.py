"""Recall-first thresholds: REVIEW reaches the recall target with the fewest false
positives, BLOCK reaches the precision floor with the most frauds, in float32 exactly."""

from __future__ import annotations

import numpy as np
import pytest

from policy.recall import RecallTarget, recall_first_thresholds


def data(seed: int, n: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.01
    s = np.where(y, rng.beta(4, 2, n), rng.beta(1, 9, n)).astype(np.float32)
    s[:50] = s[50]  # ties
    return y, s


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("recall,precision", [(0.8, 0.95), (0.5, 0.9), (0.95, 0.99)])
def test_review_is_the_highest_threshold_reaching_the_recall_and_block_the_lowest_precise(
    seed: int, recall: float, precision: float
) -> None:
    y, s = data(seed)
    th = recall_first_thresholds(
        y, s, RecallTarget(review_recall=recall, block_precision=precision)
    )
    flagged = s > th.review
    assert flagged[y].mean() >= recall
    higher = np.unique(s[s > th.review])
    if len(higher):  # the next threshold up loses the target: no fewer false positives reach it
        assert (s[y] > higher[0]).mean() < recall
    blocked = s > th.block
    if th.block < 1.0:
        assert y[blocked].mean() >= precision
    # Every lower threshold at or above REVIEW misses the floor: none blocks more frauds.
    cands = np.concatenate(
        [[np.float32(th.review)], np.unique(s[(s > th.review) & (s < th.block)])]
    )
    for c in cands[cands < th.block][-50:]:
        assert y[s > c].mean() < precision
    assert th.review <= th.block


def test_thresholds_hold_when_compared_in_float32_and_with_no_fraud_is_an_error() -> None:
    y, s = data(3)
    th = recall_first_thresholds(y, s, RecallTarget())
    assert (s > np.float32(th.review))[y].mean() == (s > th.review)[y].mean() >= 0.8
    with pytest.raises(ValueError, match="at least one fraud"):
        recall_first_thresholds(np.zeros(10, bool), s[:10], RecallTarget())
