"""Load a model directory and score feature rows with ONNX Runtime (no XGBoost needed).

The online model deployment and `fraud score` both use this, so they score identically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from features.spec import FEATURE_NAMES

ONNX_FILE = "model.onnx"
CARD_FILE = "model_card.json"
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"


class ModelError(RuntimeError):
    """A model directory is missing, unreadable or built for other features."""


def make_session(onnx_bytes: bytes, threads: int = 1) -> ort.InferenceSession:
    """An inference session whose threads do not spin against the event loop."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(onnx_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


@dataclass
class OnnxModel:
    """A loaded model: its session, card and version."""

    session: ort.InferenceSession
    card: dict[str, Any]
    path: Path

    @property
    def version(self) -> str:
        return str(self.card.get("version", self.path.name))

    def score(self, x: np.ndarray) -> np.ndarray:
        """P(fraud) per row of features in `FEATURE_NAMES` order."""
        if len(x) == 0:
            return np.empty(0, dtype=np.float64)
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        probs = self.session.run([OUTPUT_NAME], {INPUT_NAME: x32})[0]
        return np.asarray(probs, dtype=np.float64)[:, 1]


def load_model(path: str | Path, threads: int = 1) -> OnnxModel:
    """Read `model.onnx` and `model_card.json`; refuse a model built for other features."""
    path = Path(path)
    try:
        card = json.loads((path / CARD_FILE).read_text())
        onnx_bytes = (path / ONNX_FILE).read_bytes()
    except FileNotFoundError as e:
        raise ModelError(f"{path} is not a model directory: {e.filename} missing") from e
    if tuple(card.get("features", ())) != FEATURE_NAMES:
        raise ModelError(
            f"model {path} was trained on features {card.get('features')}, "
            f"this engine computes {list(FEATURE_NAMES)}"
        )
    return OnnxModel(make_session(onnx_bytes, threads), card, path)
