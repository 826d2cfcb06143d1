"""XGBoost -> ONNX with a parity gate: a model that scores differently is never saved."""

from __future__ import annotations

import numpy as np
import xgboost as xgb
from onnxmltools import convert_xgboost
from onnxmltools.convert.common.data_types import FloatTensorType

from models.onnx import INPUT_NAME, make_session

PARITY_TOLERANCE = 1e-5


class ParityError(RuntimeError):
    """ONNX and XGBoost probabilities disagree beyond the tolerance."""


def to_onnx(booster: xgb.Booster, n_features: int) -> bytes:
    """Convert a booster trained on unnamed features (f0..fN) to an ONNX classifier.

    Output `probabilities` is [N, 2]; column 1 is P(fraud).
    """
    booster = booster.copy()
    booster.feature_names = None  # onnxmltools reads split features as f<index>
    model = convert_xgboost(
        booster, initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))], target_opset=15
    )
    raw: bytes = model.SerializeToString()
    return raw


def check_parity(
    booster: xgb.Booster, onnx_bytes: bytes, x: np.ndarray, tol: float = PARITY_TOLERANCE
) -> float:
    """Max |P_onnx - P_xgboost| over `x`; raises `ParityError` above `tol`."""
    x = np.ascontiguousarray(x, np.float32)
    want = booster.inplace_predict(x)
    got = make_session(onnx_bytes, threads=2).run(["probabilities"], {INPUT_NAME: x})[0][:, 1]
    diff = float(np.max(np.abs(got - want))) if len(x) else 0.0
    if not diff <= tol:
        raise ParityError(f"ONNX vs XGBoost max abs diff {diff:.3g} > {tol:g} on {len(x)} rows")
    return diff
