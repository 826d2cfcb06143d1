"""Offline scoring (`fraud score`): the engine's features and the served ONNX model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.config import EngineConfig
from features.offline import Progress, offline_features
from features.spec import FEATURE_NAMES
from models.onnx import OnnxModel
from policy.decision import Thresholds, decide


def score_transactions(
    transactions: pd.DataFrame,
    model: OnnxModel,
    thresholds: Thresholds,
    config: EngineConfig | None = None,
    feedback: pd.DataFrame | None = None,
    use_labels: bool = True,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """transaction_id, score, decision plus the features that produced them, in event order."""
    feats = offline_features(
        transactions, config, feedback=feedback, use_labels=use_labels, progress=progress
    )
    scores = model.score(feats[list(FEATURE_NAMES)].to_numpy(dtype=np.float64))
    out = feats.copy()
    out.insert(1, "score", scores)
    out.insert(2, "decision", decide(scores, thresholds))
    return out
