"""`fraud evaluate`: the handbook's baseline and model-selection protocols, side by side
with the book's published test results, plus scoring a saved model on any labelled file."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.config import EngineConfig
from features.offline import offline_features
from features.transactions import read_transactions
from training import booster as bst
from training.metrics import evaluate_scores
from training.splits import data_origin, train_test_split

Say = Callable[[str], None]

# Test-set results published in the book (README of ../shared/datasets/handbook).
BOOK_RESULTS: dict[str, dict[str, dict[str, float]]] = {
    "baseline": {
        "xgboost": {"auc": 0.862, "average_precision": 0.639, "card_precision_at_100": 0.273},
        "random_forest": {"auc": 0.867, "average_precision": 0.658, "card_precision_at_100": 0.287},
        "logistic_regression": {
            "auc": 0.871,
            "average_precision": 0.606,
            "card_precision_at_100": 0.291,
        },
    },
    "model_selection": {
        "xgboost": {"auc": 0.872, "average_precision": 0.694, "card_precision_at_100": 0.304},
        "random_forest": {"auc": 0.875, "average_precision": 0.678, "card_precision_at_100": 0.303},
    },
}
BASELINE_START = dt.date(2018, 7, 25)
N_FOLDS = 4
FOLD_STEP_DAYS = 7
GRID: dict[str, list[Any]] = {
    "max_depth": [3, 6],
    "rounds": [50, 100, 200],
    "scale_pos_weight": [1.0, 5.0],
}
HEADLINE = ("auc", "average_precision", "card_precision_at_100")


def _fit_and_score(
    features: pd.DataFrame,
    start: pd.Timestamp,
    params: dict[str, Any],
    rounds: int,
    origin: pd.Timestamp,
) -> dict[str, Any]:
    split = train_test_split(features, start, 7, 7, 7, origin)
    model, _ = bst.fit_booster(
        bst.design_matrix(split.train), bst.labels(split.train), params, rounds
    )
    scores = bst.predict(model, bst.design_matrix(split.test))
    return evaluate_scores(split.test, scores)


def _mean(results: list[dict[str, Any]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in results])) for k in HEADLINE}


def baseline_protocol(features: pd.DataFrame, say: Say) -> dict[str, Any]:
    """Train 2018-07-25..31, 7-day delay, test 2018-08-08..14 (known-compromised cards removed)."""
    origin = data_origin(features)
    params = {**bst.DEFAULT_PARAMS}
    res = _fit_and_score(features, pd.Timestamp(BASELINE_START), params, bst.DEFAULT_ROUNDS, origin)
    say(
        f"baseline: test AUC {res['auc']:.3f} AP {res['average_precision']:.3f} "
        f"CP@100 {res['card_precision_at_100']:.3f}"
    )
    return {"params": params, "rounds": bst.DEFAULT_ROUNDS, "test": {k: res[k] for k in HEADLINE}}


def model_selection_protocol(features: pd.DataFrame, say: Say) -> dict[str, Any]:
    """Prequential grid search on validation folds, then the best model on the test folds."""
    origin = data_origin(features)
    test_start = pd.Timestamp(BASELINE_START) + pd.Timedelta(days=(N_FOLDS - 1) * FOLD_STEP_DAYS)
    valid_start = pd.Timestamp(BASELINE_START) - pd.Timedelta(days=14)

    def folds(start: pd.Timestamp) -> list[pd.Timestamp]:
        return [start - pd.Timedelta(days=FOLD_STEP_DAYS * i) for i in range(N_FOLDS)]

    trials = []
    for depth, rounds, weight in itertools.product(*GRID.values()):
        params = {**bst.DEFAULT_PARAMS, "max_depth": depth, "scale_pos_weight": weight}
        valid = _mean(
            [_fit_and_score(features, s, params, rounds, origin) for s in folds(valid_start)]
        )
        trials.append({"max_depth": depth, "rounds": rounds, "scale_pos_weight": weight, **valid})
        say(
            f"  depth={depth} rounds={rounds} spw={weight:g}: "
            f"validation AP {valid['average_precision']:.3f}"
        )
    best = max(trials, key=lambda t: t["average_precision"])
    params = {
        **bst.DEFAULT_PARAMS,
        "max_depth": best["max_depth"],
        "scale_pos_weight": best["scale_pos_weight"],
    }
    test = _mean(
        [_fit_and_score(features, s, params, best["rounds"], origin) for s in folds(test_start)]
    )
    say(
        f"model selection: test AUC {test['auc']:.3f} AP {test['average_precision']:.3f} "
        f"CP@100 {test['card_precision_at_100']:.3f}"
    )
    return {
        "grid": trials,
        "best": {k: best[k] for k in ("max_depth", "rounds", "scale_pos_weight")},
        "validation": {k: best[k] for k in HEADLINE},
        "test": test,
    }


def handbook_protocols(data: Path, say: Say = print) -> dict[str, Any]:
    """Both protocols on one handbook-format file, features from our engine."""
    say(f"reading {data}")
    transactions = read_transactions(data)
    say(f"computing features for {len(transactions):,} transactions")
    features = offline_features(transactions, EngineConfig())
    return {
        "data": str(data),
        "baseline": baseline_protocol(features, say),
        "model_selection": model_selection_protocol(features, say),
        "book": BOOK_RESULTS,
    }


def comparison_table(result: dict[str, Any]) -> list[tuple[str, str, float, float, float]]:
    """Rows (protocol, model, AUC, AP, CP@100): ours first, then the book's."""
    rows = []
    for protocol in ("baseline", "model_selection"):
        ours = result[protocol]["test"]
        rows.append((protocol, "ours (XGBoost + engine features)", *(ours[k] for k in HEADLINE)))
        for model, vals in BOOK_RESULTS[protocol].items():
            rows.append((protocol, f"book {model}", *(vals[k] for k in HEADLINE)))
    return rows
