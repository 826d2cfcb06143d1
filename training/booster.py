"""XGBoost parameters and the one fitting function both Ray Train and plain runs call."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from features.spec import FEATURE_NAMES

# Larger amounts, and amounts further above the card's usual, never lower a score: what a
# fraud analyst expects, and what the directional behaviour check asks
# (training/behaviour.py). Without it, trees learnt dips that let big frauds through.
MONOTONE_UP = ("TX_AMOUNT", "AMOUNT_DEVIATION")


def monotone(columns: tuple[str, ...] | list[str]) -> str:
    """XGBoost's monotone_constraints for a model over `columns`."""
    return "(" + ",".join("1" if n in MONOTONE_UP else "0" for n in columns) + ")"


MONOTONE = monotone(FEATURE_NAMES)

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "eval_metric": ["aucpr", "auc"],
    "tree_method": "hist",
    "max_depth": 6,
    "eta": 0.1,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 1,
    # Split candidates fine enough to put a step where the data has one (the handbook's
    # "every amount above 220 is fraud"): with the default 256 quantile bins the nearest
    # candidate can sit several units above it, and frauds just over the line score low.
    "max_bin": 4096,
    "monotone_constraints": MONOTONE,
    # An explicit base_score keeps ONNX export exact (no data-dependent intercept to carry).
    "base_score": 0.5,
    "nthread": 2,
    "seed": 0,
}
DEFAULT_ROUNDS = 200


def design_matrix(
    frame: pd.DataFrame, columns: tuple[str, ...] | list[str] = FEATURE_NAMES
) -> np.ndarray:
    """Model inputs in `columns` order (the served model's by default), float32 as the ONNX
    model takes them."""
    return frame[list(columns)].to_numpy(dtype=np.float32)


def labels(frame: pd.DataFrame) -> np.ndarray:
    return frame["is_fraud"].to_numpy().astype(np.float32)


def fit_booster(
    x: np.ndarray,
    y: np.ndarray,
    params: dict[str, Any],
    rounds: int,
    x_valid: np.ndarray | None = None,
    y_valid: np.ndarray | None = None,
) -> tuple[xgb.Booster, dict[str, float]]:
    """Train on arrays (features f0..fN, as onnxmltools needs) and return final eval metrics."""
    dtrain = xgb.DMatrix(x, label=y)
    evals = [(dtrain, "train")]
    if x_valid is not None and y_valid is not None and len(y_valid):
        evals.append((xgb.DMatrix(x_valid, label=y_valid), "validation"))
    log: dict[str, dict[str, list[float]]] = {}
    booster = xgb.train(params, dtrain, rounds, evals=evals, evals_result=log, verbose_eval=False)
    final = {f"{d}_{m}": float(v[-1]) for d, ms in log.items() for m, v in ms.items()}
    return booster, final


def predict(booster: xgb.Booster, x: np.ndarray) -> np.ndarray:
    return booster.inplace_predict(x)
