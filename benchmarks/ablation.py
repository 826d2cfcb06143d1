"""python -m benchmarks ablation: what each group of engine features gains on the handbook.

The handbook file's features are computed once by the engine; each feature set is then
trained and scored with the parameters `fraud evaluate` chose on the validation folds (read
from its JSON), by the same fitting code, on the validation folds, the
baseline chapter's test week and the model-selection chapter's 4 test folds. Prints a table
and saves JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.common import save
from features.config import EngineConfig
from features.offline import offline_features
from features.spec import FEATURE_NAMES, HANDBOOK_FEATURES
from features.transactions import read_transactions
from training.evaluate import (
    BASELINE_START,
    HEADLINE,
    TEST_START,
    VALID_START,
    fit_and_score,
    folds,
    mean_measures,
    split_choice,
)
from training.metrics import card_precision_at_k
from training.splits import data_origin, train_test_split

DATA = Path("../shared/datasets/handbook/transactions.parquet")
CARD_EXTRAS = [
    "AMOUNT_DEVIATION",
    "SECONDS_SINCE_LAST_TX",
    "USER_NB_TX_1HOUR_WINDOW",
    "USER_AMOUNT_SUM_1HOUR_WINDOW",
    "USER_NEW_TERMINAL",
]
MAX_DEVIATION = ["USER_MAX_AMOUNT_DEVIATION_7DAY_WINDOW", "USER_MAX_AMOUNT_DEVIATION_30DAY_WINDOW"]
LAST_LABEL = ["TERMINAL_ID_LAST_LABEL"]
SETS: dict[str, list[str]] = {
    "handbook 15": list(HANDBOOK_FEATURES),
    "+ card extras (20)": [*HANDBOOK_FEATURES, *CARD_EXTRAS],
    "+ terminal last label (21)": [*HANDBOOK_FEATURES, *CARD_EXTRAS, *LAST_LABEL],
    "+ max deviation 7d/30d (22)": [*HANDBOOK_FEATURES, *CARD_EXTRAS, *MAX_DEVIATION],
    "all (23)": list(FEATURE_NAMES),
}


def ceilings(feats: pd.DataFrame, start: pd.Timestamp) -> dict[str, float]:
    """CP@100 of two oracles on a test week: one that knows every fraud, and one that knows
    only the frauds some feature can see (amount or card scenarios, or a terminal with a
    known fraud in its window): no model over these features does better than the second,
    but by chance among the cards it cannot tell apart."""
    test = train_test_split(feats, start, 7, 7, 7, data_origin(feats)).test
    fraud = test["is_fraud"].to_numpy() == 1
    terminal = test["fraud_scenario"].to_numpy() == 2
    known = (test["TERMINAL_ID_RISK_30DAY_WINDOW"].to_numpy() > 0) | (
        test["TERMINAL_ID_LAST_LABEL"].to_numpy() > 0
    )
    reach = fraud & (~terminal | known)
    return {
        "all_frauds": round(card_precision_at_k(test, fraud.astype(float)), 4),
        "frauds_in_reach": round(card_precision_at_k(test, reach.astype(float)), 4),
        "terminal_frauds_in_reach": round(float(reach[terminal].mean()), 4),
    }


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks ablation")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument(
        "--eval-json",
        type=Path,
        default=Path("data/handbook-eval.json"),
        help="`fraud evaluate --json` output (`make evaluate`): its validation choice is used",
    )
    args = ap.parse_args(argv)
    if not args.eval_json.exists():
        raise SystemExit(f"{args.eval_json} not found: run `make evaluate` first")
    choice = json.loads(args.eval_json.read_text())["model_selection"]["best"]
    params, rounds = split_choice(choice)
    t0 = time.perf_counter()
    feats = offline_features(read_transactions(args.data), EngineConfig())
    base = pd.Timestamp(BASELINE_START)
    valid, test = folds(VALID_START), folds(TEST_START)

    def measures(starts: list[pd.Timestamp], columns: list[str]) -> dict[str, float]:
        rs = [fit_and_score(feats, s, params, rounds, columns) for s in starts]
        return {k: round(v, 4) for k, v in mean_measures(rs).items()}

    rows: list[dict[str, Any]] = []
    print(f"parameters {choice}; validation | baseline test | model-selection test (AUC AP CP@100)")
    for name, columns in SETS.items():
        row: dict[str, Any] = {
            "set": name,
            "features": len(columns),
            "validation": measures(valid, columns),
            "baseline": measures([base], columns),
            "model_selection": measures(test, columns),
        }
        rows.append(row)
        cells = " | ".join(
            " ".join(f"{row[p][k]:.3f}" for k in HEADLINE)
            for p in ("validation", "baseline", "model_selection")
        )
        print(f"{name:30s} {cells}", flush=True)
    reach = {
        "baseline": ceilings(feats, base),
        "model_selection": [ceilings(feats, s) for s in test],
    }
    print(f"CP@100 ceilings, baseline week: {reach['baseline']}")
    save(
        "ablation",
        {"data": str(args.data), "choice": choice, "rows": rows, "ceilings": reach,
         "seconds": round(time.perf_counter() - t0, 1)},
    )  # fmt: skip


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
