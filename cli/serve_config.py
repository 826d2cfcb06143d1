"""Read what `serve_config.yaml` serves, so offline tools default to the live model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from features.decision import Thresholds

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVE_CONFIG = REPO_ROOT / "serve_config.yaml"


def app_args(path: Path = SERVE_CONFIG) -> dict[str, Any]:
    """The `args` of the fraud application in the Serve config file."""
    doc = yaml.safe_load(path.read_text())
    for application in doc.get("applications", []):
        if application.get("name") == "fraud":
            return dict(application.get("args") or {})
    raise ValueError(f"{path} has no application named 'fraud'")


def served_model_dir(path: Path = SERVE_CONFIG) -> Path:
    model_dir = Path(app_args(path).get("model_dir", "models/default"))
    return model_dir if model_dir.is_absolute() else REPO_ROOT / model_dir


def served_thresholds(card: dict[str, Any], path: Path = SERVE_CONFIG) -> Thresholds:
    """Thresholds from the config if set there, else the model card's."""
    configured = app_args(path).get("thresholds") if path.exists() else None
    return Thresholds(**(configured or card.get("thresholds") or {}))
