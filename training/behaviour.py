"""Behaviour checks of a model, beside its metrics (Made-With-ML's behavioural tests, after
CheckList): what it must do, whatever its AP.

- minimum functionality, where the data holds the pattern: every transaction above 220 is
  flagged where the history is labelled with the handbook's scenario 1 (there, every such
  amount is a fraud); every card-testing burst has a flagged transaction where scenario 4
  is labelled; every transaction matching a condition the team declares (the rule
  language: `fraud train --expect-flagged "amount_sum_1h > 5000"`) is flagged;
- invariance: renaming every card, terminal and transaction id changes no score;
- directional: a larger deviation from the card's usual amount never lowers a score, all
  other features equal.

A check is a property of the data it runs on: where the history holds no case of its
pattern (a team's own history has no scenario column, and its amounts above 220 are
genuine), it is reported as not applicable, never as a failure. `fraud train` runs them on
its test block, records each with its status in the model card, and refuses to save a model
that fails one that applies (as with ONNX parity); `tests/model/test_behaviour.py` runs them
on `models/default`.
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
from policy.expressions import Condition

Scorer = Callable[[np.ndarray], np.ndarray]  # float32 rows in FEATURE_NAMES order -> P(fraud)
ALWAYS_FRAUD_ABOVE = 220.0
BIG_AMOUNT, CARD_TESTING = 1, 4  # the simulator's scenario codes
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
    applies: bool = True  # False: the data holds no case of the pattern it checks

    @property
    def status(self) -> str:
        return "not applicable" if not self.applies else "pass" if self.passed else "FAIL"

    @property
    def failed(self) -> bool:
        return self.applies and not self.passed


def _not_applicable(name: str, why: str) -> Check:
    return Check(name, False, 0, why, applies=False)


def _scenarios(period: pd.DataFrame) -> set[int]:
    """The scenario codes the history is labelled with (none without the column)."""
    if "fraud_scenario" not in period:
        return set()
    return {int(v) for v in pd.unique(period["fraud_scenario"])}


def _matrix(frame: pd.DataFrame) -> np.ndarray:
    return frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)


def behaviour_checks(
    transactions: pd.DataFrame,
    score: Scorer,
    thresholds: Thresholds,
    config: EngineConfig,
    since: pd.Timestamp | None = None,
    expect_flagged: tuple[Condition, ...] = (),
) -> list[Check]:
    """Each check on the transactions from `since` on (earlier ones fill the windows).
    `expect_flagged`: conditions (the rule language) whose every match must be flagged."""
    feats = offline_features(transactions, config)
    keep = np.ones(len(feats), bool) if since is None else (feats["timestamp"] >= since).to_numpy()
    period = feats[keep]
    x = _matrix(period)
    scores = score(x)
    flagged = scores > thresholds.review
    labelled = _scenarios(period)
    checks = [_big_amounts(period, scores, flagged, labelled), _card_testing(period, flagged)]
    checks += [_declared(c, x, scores, flagged) for c in expect_flagged]
    checks.append(_renamed(transactions, score, scores, config, keep))
    checks.append(_deviation(period, score))
    return checks


def _big_amounts(
    period: pd.DataFrame, scores: np.ndarray, flagged: np.ndarray, labelled: set[int]
) -> Check:
    name = "flags every amount above 220"
    if BIG_AMOUNT not in labelled:
        return _not_applicable(name, "the history is not labelled with the amount scenario")
    big = (period["TX_AMOUNT"] > ALWAYS_FRAUD_ABOVE).to_numpy()
    missed = big & ~flagged
    low = float(scores[big].min()) if big.any() else float("nan")
    return Check(
        name,
        bool(big.any()) and not missed.any(),
        int(big.sum()),
        f"{int(missed.sum())} of {int(big.sum())} not flagged; lowest score {low:.3f}",
    )


def _card_testing(period: pd.DataFrame, flagged: np.ndarray) -> Check:
    name = "flags every card-testing burst"
    if CARD_TESTING not in _scenarios(period):
        return _not_applicable(name, "no card-testing burst labelled in this history")
    burst = (period["fraud_scenario"] == CARD_TESTING).to_numpy()
    day = period["timestamp"].dt.normalize()
    groups = pd.DataFrame({"card": period["user_id"], "day": day, "hit": flagged})[burst]
    caught = groups.groupby(["card", "day"])["hit"].any()
    return Check(
        name,
        bool(caught.all()),
        len(caught),
        f"{int((~caught).sum())} of {len(caught)} bursts (card and day) without a flag",
    )


def _declared(
    condition: Condition, x: np.ndarray, scores: np.ndarray, flagged: np.ndarray
) -> Check:
    name = f"flags every transaction where {condition.text}"
    match = condition.evaluate(x, scores)
    if not match.any():
        return _not_applicable(name, "no transaction in this history matches")
    missed = int((match & ~flagged).sum())
    return Check(name, missed == 0, int(match.sum()), f"{missed} of {int(match.sum())} not flagged")


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
    """What the model card records: every check with its status, and which ones ran."""
    return {
        "passed": not any(c.failed for c in checks),
        "ran": [c.name for c in checks if c.applies],
        "not_applicable": [c.name for c in checks if not c.applies],
        "checks": [{**asdict(c), "status": c.status} for c in checks],
    }
