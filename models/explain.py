"""Per-transaction feature contributions (TreeSHAP) from the booster the ONNX model came from.

Every model directory keeps `model.json` beside `model.onnx`. Exact TreeSHAP values in
log-odds come from per-leaf tables built from it (`models.treeshap`: the same values as
XGBoost's `pred_contribs`, 5.5-6.7x cheaper per row); they still cost far more than ONNX
scoring, so the service asks for them only for the rows it flags.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xgboost as xgb

from features.spec import FEATURE_NAMES
from models.card import BOOSTER_FILE
from models.treeshap import load_tables, shap_values


class Explainer:
    def __init__(self, path: str | Path) -> None:
        self.booster = xgb.Booster()
        self.booster.load_model(str(Path(path) / BOOSTER_FILE))
        self.booster.set_param({"nthread": 1})
        self.tables = load_tables(Path(path) / BOOSTER_FILE)

    def contributions(self, x: np.ndarray, approx: bool = False) -> np.ndarray:
        """(n, features) log-odds contributions; the bias column is dropped.

        `approx`: Saabas path attribution (XGBoost's) instead of exact TreeSHAP, cheaper
        still (0.03 ms per row for the default model against the tables' ~0.45 ms for one
        row alone and ~0.1 ms per row in groups of 16 or more),
        but its top reason differs from TreeSHAP's on about 4 rows in 10; the service's
        `reasons: approx` setting."""
        if len(x) == 0:
            return np.empty((0, len(FEATURE_NAMES)))
        if not approx:
            return shap_values(self.tables, x)
        dm = xgb.DMatrix(np.asarray(x, np.float32), feature_names=list(FEATURE_NAMES))
        contribs = self.booster.predict(dm, pred_contribs=True, approx_contribs=True)
        return np.asarray(contribs)[:, :-1]
