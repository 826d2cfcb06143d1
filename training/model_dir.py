"""A model directory: model.onnx, model.json (XGBoost native, for reasons), model_card.json,
and two plots (rates vs thresholds; expected cost vs thresholds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from features.explain import BOOSTER_FILE
from features.onnx_model import CARD_FILE, ONNX_FILE

NATIVE_FILE = BOOSTER_FILE
PLOT_FILE = "thresholds.png"
COST_PLOT_FILE = "cost_thresholds.png"


def write_model_dir(
    path: Path, onnx_bytes: bytes, booster_json: bytes, card: dict[str, Any]
) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / ONNX_FILE).write_bytes(onnx_bytes)
    (path / NATIVE_FILE).write_bytes(booster_json)
    (path / CARD_FILE).write_text(json.dumps(card, indent=2, default=str) + "\n")
