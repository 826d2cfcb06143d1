"""A model directory: model.onnx, model.json (XGBoost native), model_card.json, a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from features.onnx_model import CARD_FILE, ONNX_FILE

NATIVE_FILE = "model.json"
PLOT_FILE = "thresholds.png"


def write_model_dir(
    path: Path, onnx_bytes: bytes, booster_json: bytes, card: dict[str, Any]
) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / ONNX_FILE).write_bytes(onnx_bytes)
    (path / NATIVE_FILE).write_bytes(booster_json)
    (path / CARD_FILE).write_text(json.dumps(card, indent=2, default=str) + "\n")
