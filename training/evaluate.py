"""`fraud evaluate`: the handbook's baseline and model-selection protocols, side by side
with the book's published test results, plus scoring a saved model on any labelled file.

Every choice (the XGBoost parameters) is made on the model-selection chapter's validation
folds, which all end before either protocol's test days."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.config import EngineConfig
from features.offline import offline_features
from features.spec import FEATURE_NAMES
from features.transactions import SCENARIOS, read_transactions
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
# Training starts of the first validation fold and the first test fold; folds step back.
VALID_START = pd.Timestamp(BASELINE_START) - pd.Timedelta(days=14)
TEST_START = pd.Timestamp(BASELINE_START) + pd.Timedelta(days=(N_FOLDS - 1) * FOLD_STEP_DAYS)
# Searched on the validation folds; "rounds" is the number of boosting rounds, the rest are
# XGBoost parameters.
GRID: dict[str, list[Any]] = {
    "max_depth": [3, 4, 6],
    "min_child_weight": [1, 5],
    "rounds": [100, 200],
    "scale_pos_weight": [1.0],
}
HEADLINE = ("auc", "average_precision", "card_precision_at_100")
LEGIT_FALSE_POSITIVE_RATE = 0.01  # per-scenario detection is read at this operating point


def scenario_detection(test: pd.DataFrame, scores: np.ndarray) -> dict[str, dict[str, float]]:
    """Per fraud scenario: its test frauds, their AUC against every legitimate test
    transaction, and the share scored above the legitimate scores' 99th percentile (what a
    1 % false-positive rate catches)."""
    y = test["is_fraud"].to_numpy()
    codes = test["fraud_scenario"].to_numpy()
    legit = scores[y == 0]
    cut = float(np.quantile(legit, 1 - LEGIT_FALSE_POSITIVE_RATE)) if len(legit) else 1.0
    out: dict[str, dict[str, float]] = {}
    for code in sorted(set(codes[y == 1].tolist())):
        mine = scores[(codes == code) & (y == 1)]
        both = np.r_[mine, legit]
        labels = np.r_[np.ones(len(mine)), np.zeros(len(legit))]
        out[SCENARIOS.get(int(code), str(code))] = {
            "frauds": len(mine),
            "auc": float(roc_auc_score(labels, both)) if len(legit) else float("nan"),
            "detected_at_1pct_fpr": float(np.mean(mine > cut)),
        }
    return out


def fit_and_score(
    features: pd.DataFrame,
    start: pd.Timestamp,
    params: dict[str, Any],
    rounds: int,
    columns: tuple[str, ...] | list[str] = FEATURE_NAMES,
) -> dict[str, Any]:
    """Train on the 7 days from `start` over `columns` (amount inputs monotone, as served),
    test on the 7 days after the delay: the book's measures and per-scenario detection."""
    split = train_test_split(features, start, 7, 7, 7, data_origin(features))
    params = {**params, "monotone_constraints": bst.monotone(columns)}
    x = bst.design_matrix(split.train, columns)
    model, _ = bst.fit_booster(x, bst.labels(split.train), params, rounds)
    scores = bst.predict(model, bst.design_matrix(split.test, columns))
    return {
        **evaluate_scores(split.test, scores),
        "by_scenario": scenario_detection(split.test, scores),
    }


def mean_measures(results: list[dict[str, Any]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in results])) for k in HEADLINE}


def mean_by_scenario(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each scenario's measures averaged over the folds that hold it."""
    names = sorted({n for r in results for n in r["by_scenario"]})
    return {
        n: {
            k: float(np.mean([r["by_scenario"][n][k] for r in results if n in r["by_scenario"]]))
            for k in ("frauds", "auc", "detected_at_1pct_fpr")
        }
        for n in names
    }


def folds(start: pd.Timestamp) -> list[pd.Timestamp]:
    """Training starts of the 4 prequential folds, stepping back a week from `start`."""
    return [start - pd.Timedelta(days=FOLD_STEP_DAYS * i) for i in range(N_FOLDS)]


def split_choice(choice: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """A grid point as (XGBoost parameters over the defaults, boosting rounds)."""
    params = {**bst.DEFAULT_PARAMS, **{k: v for k, v in choice.items() if k != "rounds"}}
    return params, int(choice["rounds"])


def select_parameters(features: pd.DataFrame, say: Say) -> dict[str, Any]:
    """The book's prequential grid search: every `GRID` point trained and scored on the 4
    validation folds (all before the baseline's test week); the best mean AP wins."""
    trials = []
    for point in itertools.product(*GRID.values()):
        choice = dict(zip(GRID, point, strict=True))
        params, rounds = split_choice(choice)
        valid = mean_measures(
            [fit_and_score(features, s, params, rounds) for s in folds(VALID_START)]
        )
        trials.append({**choice, **valid})
        say(
            "  "
            + " ".join(f"{k}={v:g}" for k, v in choice.items())
            + f": validation AP {valid['average_precision']:.3f}"
        )
    best = max(trials, key=lambda t: t["average_precision"])
    return {
        "grid": trials,
        "best": {k: best[k] for k in GRID},
        "validation": {k: best[k] for k in HEADLINE},
    }


def baseline_protocol(features: pd.DataFrame, best: dict[str, Any], say: Say) -> dict[str, Any]:
    """Train 2018-07-25..31, 7-day delay, test 2018-08-08..14 (known-compromised cards
    removed), with the parameters chosen on the validation folds."""
    params, rounds = split_choice(best)
    res = fit_and_score(features, pd.Timestamp(BASELINE_START), params, rounds)
    say(
        f"baseline: test AUC {res['auc']:.3f} AP {res['average_precision']:.3f} "
        f"CP@100 {res['card_precision_at_100']:.3f}"
    )
    return {
        "params": params,
        "rounds": rounds,
        "test": {k: res[k] for k in HEADLINE},
        "by_scenario": res["by_scenario"],
    }


def model_selection_protocol(
    features: pd.DataFrame, selection: dict[str, Any], say: Say
) -> dict[str, Any]:
    """The chosen parameters on the 4 test folds (training from 2018-08-15 back)."""
    params, rounds = split_choice(selection["best"])
    results = [fit_and_score(features, s, params, rounds) for s in folds(TEST_START)]
    test = mean_measures(results)
    say(
        f"model selection: test AUC {test['auc']:.3f} AP {test['average_precision']:.3f} "
        f"CP@100 {test['card_precision_at_100']:.3f}"
    )
    return {**selection, "test": test, "by_scenario": mean_by_scenario(results)}


def handbook_protocols(data: Path, say: Say = print) -> dict[str, Any]:
    """Both protocols on one handbook-format file, features from our engine; one parameter
    choice, made on the validation folds, serves both."""
    say(f"reading {data}")
    transactions = read_transactions(data)
    say(f"computing features for {len(transactions):,} transactions")
    features = offline_features(transactions, EngineConfig())
    say(f"choosing parameters on {N_FOLDS} validation folds")
    selection = select_parameters(features, say)
    return {
        "data": str(data),
        "baseline": baseline_protocol(features, selection["best"], say),
        "model_selection": model_selection_protocol(features, selection, say),
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
