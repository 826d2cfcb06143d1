"""python -m benchmarks ablation: what each group of engine features gains.

On the handbook: the file's features are computed once by the engine; each feature set is
then trained and scored with the parameters `fraud evaluate` chose on the validation folds
(read from its JSON), by the same fitting code, on the validation folds, the baseline
chapter's test week and the model-selection chapter's 4 test folds.

With `--gateway STREAM` (a `fraud simulate` stream with the gateway's scenarios 5-7, e.g.
`make model`'s data/train.parquet): each group of gateway features (the channel and BIN
flags, the device / IP / email / card-country links) added to the other 23, trained with
the booster's defaults on the 4 validation-fold weeks, with each scenario's detection at a
1 % false-positive rate. Prints a table and saves JSON under benchmarks/results/.
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
from features.spec import FEATURE_NAMES, FEATURES, HANDBOOK_FEATURES, LINKS
from features.transactions import read_transactions
from training import booster as bst
from training.evaluate import (
    BASELINE_START,
    HEADLINE,
    TEST_START,
    VALID_START,
    fit_and_score,
    folds,
    mean_by_scenario,
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
    "all (33)": list(FEATURE_NAMES),
}
CORE = [s.name for s in FEATURES if s.entity in ("transaction", "card", "terminal")]
FLAGS = ["TX_CARD_NOT_PRESENT", "TX_BIN_COUNTRY_MISMATCH"]
CORE = [c for c in CORE if c not in FLAGS]
LINK_GROUPS = {e: [s.name for s in FEATURES if s.entity == e] for e in LINKS}
GATEWAY_SETS: dict[str, list[str]] = {
    f"without gateway fields ({len(CORE)})": CORE,
    "+ channel, BIN flags": [*CORE, *FLAGS],
    **{f"+ {e} links": [*CORE, *cols] for e, cols in LINK_GROUPS.items()},
    "+ all links": [*CORE, *(c for cols in LINK_GROUPS.values() for c in cols)],
    f"all ({len(FEATURE_NAMES)})": list(FEATURE_NAMES),
}


def gateway_ablation(path: Path) -> None:
    """What each group of gateway features adds, on a simulated stream with scenarios 5-7."""
    t0 = time.perf_counter()
    feats = offline_features(read_transactions(path), EngineConfig())
    starts = folds(VALID_START)
    rows: list[dict[str, Any]] = []
    print("booster defaults; 4 validation-fold weeks: AUC AP CP@100 | detected at 1 % FPR")
    for name, columns in GATEWAY_SETS.items():
        rs = [fit_and_score(feats, s, bst.DEFAULT_PARAMS, bst.DEFAULT_ROUNDS, columns)
              for s in starts]  # fmt: skip
        scenarios = mean_by_scenario(rs)
        measures = {k: round(v, 4) for k, v in mean_measures(rs).items()}
        rows.append(
            {"set": name, "features": len(columns), "measures": measures, "by_scenario": scenarios}
        )
        detected = " ".join(f"{k}={v['detected_at_1pct_fpr']:.2f}" for k, v in scenarios.items())
        cells = " ".join(f"{measures[k]:.3f}" for k in HEADLINE)
        print(f"{name:32s} {cells} | {detected}", flush=True)
    save(
        "ablation-gateway",
        {"data": str(path), "rows": rows, "seconds": round(time.perf_counter() - t0, 1)},
    )


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
    ap.add_argument(
        "--gateway",
        type=Path,
        default=None,
        help="a simulated stream with the gateway's scenarios: ablate the gateway features",
    )
    args = ap.parse_args(argv)
    if args.gateway is not None:
        gateway_ablation(args.gateway)
        return
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
