"""XGBoost -> ONNX with a parity gate: a model that scores differently is never saved."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import xgboost as xgb
from onnxmltools import convert_xgboost
from onnxmltools.convert.common.data_types import FloatTensorType

PARITY_TOLERANCE = 1e-5
INPUT_NAME = "input"


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
    return model.SerializeToString()


def session(onnx_bytes: bytes, threads: int = 1) -> ort.InferenceSession:
    """An inference session that does not spin threads against the event loop."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(onnx_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


def onnx_scores(sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    """P(fraud) for each row of float32 inputs."""
    probs = sess.run(["probabilities"], {INPUT_NAME: np.ascontiguousarray(x, np.float32)})[0]
    return np.asarray(probs)[:, 1]


def check_parity(
    booster: xgb.Booster, onnx_bytes: bytes, x: np.ndarray, tol: float = PARITY_TOLERANCE
) -> float:
    """Max |P_onnx - P_xgboost| over `x`; raises `ParityError` above `tol`."""
    x = np.ascontiguousarray(x, np.float32)
    want = booster.inplace_predict(x)
    got = onnx_scores(session(onnx_bytes, threads=2), x)
    diff = float(np.max(np.abs(got - want))) if len(x) else 0.0
    if not diff <= tol:
        raise ParityError(f"ONNX vs XGBoost max abs diff {diff:.3g} > {tol:g} on {len(x)} rows")
    return diff
