"""Behaviour checks of a model, beside its metrics (Made-With-ML's behavioural tests, after
CheckList): what it must do on any stream like the handbook's, whatever its AP.

- minimum functionality: every transaction above 220 (the handbook's scenario 1: always a
  fraud) is flagged; every card-testing burst has a flagged transaction;
- invariance: renaming every card, terminal and transaction id changes no score;
- directional: a larger deviation from the card's usual amount never lowers a score, all
  other features equal.

`fraud train` runs them on its test block and refuses to save a model that fails one (as
with ONNX parity); `tests/model/test_behaviour.py` runs them on `models/default`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from features.config import EngineConfig
from features.offline import offline_features
from features.spec import FEATURE_NAMES
from policy.decision import Thresholds

Scorer = Callable[[np.ndarray], np.ndarray]  # float32 rows in FEATURE_NAMES order -> P(fraud)
ALWAYS_FRAUD_ABOVE = 220.0
CARD_TESTING = 4  # the simulator's scenario code
DEVIATION = FEATURE_NAMES.index("AMOUNT_DEVIATION")
FACTORS = (1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 50.0)


class BehaviourError(ValueError):
    """A model failed a behaviour check: it is not saved."""


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    cases: int
    detail: str


def _matrix(frame: pd.DataFrame) -> np.ndarray:
    return frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)


def behaviour_checks(
    transactions: pd.DataFrame,
    score: Scorer,
    thresholds: Thresholds,
    config: EngineConfig,
    since: pd.Timestamp | None = None,
) -> list[Check]:
    """Each check on the transactions from `since` on (earlier ones fill the windows)."""
    feats = offline_features(transactions, config)
    keep = np.ones(len(feats), bool) if since is None else (feats["timestamp"] >= since).to_numpy()
    period = feats[keep]
    scores = score(_matrix(period))
    flagged = scores > thresholds.review
    checks = [_big_amounts(period, scores, flagged), _card_testing(period, flagged)]
    checks.append(_renamed(transactions, score, scores, config, keep))
    checks.append(_deviation(period, score))
    return checks


def _big_amounts(period: pd.DataFrame, scores: np.ndarray, flagged: np.ndarray) -> Check:
    big = (period["TX_AMOUNT"] > ALWAYS_FRAUD_ABOVE).to_numpy()
    missed = big & ~flagged
    low = float(scores[big].min()) if big.any() else float("nan")
    return Check(
        "flags every amount above 220",
        bool(big.any()) and not missed.any(),
        int(big.sum()),
        f"{int(missed.sum())} of {int(big.sum())} not flagged; lowest score {low:.3f}",
    )


def _card_testing(period: pd.DataFrame, flagged: np.ndarray) -> Check:
    if "fraud_scenario" not in period:
        return Check("flags every card-testing burst", False, 0, "no fraud_scenario column")
    burst = (period["fraud_scenario"] == CARD_TESTING).to_numpy()
    if not burst.any():
        return Check("flags every card-testing burst", False, 0, "no card-testing burst here")
    day = period["timestamp"].dt.normalize()
    groups = pd.DataFrame({"card": period["user_id"], "day": day, "hit": flagged})[burst]
    caught = groups.groupby(["card", "day"])["hit"].any()
    return Check(
        "flags every card-testing burst",
        bool(caught.all()),
        len(caught),
        f"{int((~caught).sum())} of {len(caught)} bursts (card and day) without a flag",
    )


def _renamed(
    transactions: pd.DataFrame,
    score: Scorer,
    scores: np.ndarray,
    config: EngineConfig,
    keep: np.ndarray,
) -> Check:
    renamed = transactions.copy()
    for col in ("transaction_id", "user_id", "terminal_id"):
        renamed[col] = "renamed-" + renamed[col].astype(str)
    again = score(_matrix(offline_features(renamed, config)[keep]))
    worst = float(np.max(np.abs(again - scores))) if len(scores) else 0.0
    return Check(
        "renaming ids changes no score", worst <= 1e-6, len(scores), f"max change {worst:.2e}"
    )


def _deviation(period: pd.DataFrame, score: Scorer, rows: int = 2_000, seed: int = 0) -> Check:
    x = _matrix(period)
    rng = np.random.default_rng(seed)
    x = x[rng.choice(len(x), size=min(rows, len(x)), replace=False)] if len(x) else x
    ladder = []
    for factor in FACTORS:
        xs = x.copy()
        xs[:, DEVIATION] = np.maximum(x[:, DEVIATION], 1.0) * factor
        ladder.append(score(xs))
    drops = np.diff(np.stack(ladder), axis=0) < -1e-6
    bad = int(drops.any(axis=0).sum())
    return Check(
        "a larger amount deviation never lowers a score",
        bad == 0 and len(x) > 0,
        len(x),
        f"{bad} of {len(x)} rows scored lower at a larger deviation",
    )


def summary(checks: list[Check]) -> dict[str, object]:
    """What the model card records."""
    return {"passed": all(c.passed for c in checks), "checks": [asdict(c) for c in checks]}
