"""Load a model directory and score feature rows with ONNX Runtime (no XGBoost needed).

The online model deployment and `fraud score` both use this, so they score identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.card import ModelCard, ModelDir

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"


def make_session(onnx_bytes: bytes, threads: int = 1) -> ort.InferenceSession:
    """An inference session whose threads do not spin against the event loop."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(onnx_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


@dataclass
class OnnxModel:
    """A loaded model: its session, card and directory."""

    session: ort.InferenceSession
    card: ModelCard
    path: Path

    @property
    def version(self) -> str:
        return self.card.version

    def score(self, x: np.ndarray) -> np.ndarray:
        """P(fraud) per row of features in `FEATURE_NAMES` order."""
        if len(x) == 0:
            return np.empty(0, dtype=np.float64)
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        probs = self.session.run([OUTPUT_NAME], {INPUT_NAME: x32})[0]
        return np.asarray(probs, dtype=np.float64)[:, 1]


def load_model(path: str | Path, threads: int = 1) -> OnnxModel:
    """Read the card and `model.onnx`; `ModelError` for a model built for other features."""
    directory = ModelDir(path)
    card = directory.read_card()
    return OnnxModel(make_session(directory.read_onnx(), threads), card, directory.path)
