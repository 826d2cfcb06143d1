"""Card Precision@k, threshold rates and the time split, on tiny hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from policy.decision import Thresholds, decide
from training.metrics import card_precision_at_k, threshold_rates
from training.splits import time_blocks, train_test_split


def frame(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "transaction_id": range(len(rows)),
            "timestamp": pd.to_datetime([r[0] for r in rows]),
            "user_id": [r[1] for r in rows],
            "is_fraud": [r[2] for r in rows],
        }
    )


def test_card_precision_takes_the_max_per_card_and_removes_detected_cards() -> None:
    df = frame(
        [
            ("2018-08-01 10:00", "a", 1),
            ("2018-08-01 11:00", "a", 0),
            ("2018-08-01 12:00", "b", 0),
            ("2018-08-02 10:00", "a", 1),
            ("2018-08-02 11:00", "c", 1),
            ("2018-08-02 12:00", "b", 0),
        ]
    )
    scores = np.array([0.2, 0.9, 0.5, 0.99, 0.3, 0.6])
    # Day 1: top-1 card is a (max 0.9), compromised -> 1.0. Day 2: a is removed; b (0.6) > c.
    assert card_precision_at_k(df, scores, k=1) == pytest.approx(0.5)
    assert card_precision_at_k(df, scores, k=2) == pytest.approx((0.5 + 0.5) / 2)


def test_threshold_rates_are_strict() -> None:
    y = np.array([1, 1, 0, 0])
    r = threshold_rates(y, np.array([0.9, 0.5, 0.5, 0.1]), 0.5)
    assert (r["recall"], r["precision"], r["false_positive_rate"]) == (0.5, 1.0, 0.0)


def test_decision_tiers() -> None:
    out = decide(np.array([0.0, 0.5, 0.5001, 0.9, 0.95]), Thresholds())
    assert out.tolist() == ["LEGIT", "LEGIT", "REVIEW", "REVIEW", "BLOCK"]
    with pytest.raises(ValueError, match="must not exceed"):
        Thresholds(review=0.95, block=0.9)


def test_split_removes_cards_known_compromised_before_each_test_day() -> None:
    rows = [("2018-07-01 10:00", "a", 1)]  # a: fraud seen in training
    rows += [("2018-07-02 10:00", "b", 1)]  # b: known from test day 2 (the book: day - delay - 1)
    rows += [(f"2018-07-{d:02d} 12:00", u, 0) for d in (4, 5) for u in ("a", "b", "c")]
    split = train_test_split(frame(rows), pd.Timestamp("2018-07-01"), 1, 2, 2)
    assert split.train["user_id"].tolist() == ["a"]
    day = split.test["timestamp"].dt.day
    assert sorted(split.test.loc[day == 4, "user_id"]) == ["b", "c"]
    assert sorted(split.test.loc[day == 5, "user_id"]) == ["c"]


def test_time_blocks_are_ordered_with_gaps(small_stream: pd.DataFrame) -> None:
    b = time_blocks(small_stream, delay_days=3, valid_days=4, test_days=4, warmup_days=3)
    assert b.train["timestamp"].max() < b.validation_start - pd.Timedelta(days=3) + pd.Timedelta(
        seconds=1
    )
    assert b.validation["timestamp"].min() >= b.validation_start
    assert b.validation["timestamp"].max() < b.test_start - pd.Timedelta(days=3)
    assert b.test["timestamp"].min() >= b.test_start
    with pytest.raises(ValueError, match="too few"):
        time_blocks(small_stream, delay_days=20, valid_days=10, test_days=10)


def test_scenario_detection_reads_each_scenario_at_one_percent_false_positives() -> None:
    from training.evaluate import scenario_detection

    legit = np.linspace(0.0, 0.5, 200)  # the 99th percentile is ~0.495
    test = pd.DataFrame(
        {
            "is_fraud": [0] * 200 + [1] * 4,
            "fraud_scenario": [0] * 200 + [1, 1, 2, 2],
            "score": [*legit, 0.9, 0.8, 0.9, 0.1],
        }
    )
    out = scenario_detection(test, test["score"].to_numpy())
    assert set(out) == {"amount > 220", "compromised terminal"}
    assert out["amount > 220"] == {"frauds": 2, "auc": 1.0, "detected_at_1pct_fpr": 1.0}
    assert out["compromised terminal"]["detected_at_1pct_fpr"] == 0.5
    assert out["compromised terminal"]["auc"] == pytest.approx((1.0 + 0.2) / 2, abs=0.01)
