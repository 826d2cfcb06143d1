"""Read what `serve_config.yaml` serves, so offline tools default to the live model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from actors.paths import REPO_ROOT
from features.config import EngineConfig
from models.card import ModelCard
from policy.decision import Thresholds

SERVE_CONFIG = REPO_ROOT / "serve_config.yaml"


def fraud_app(path: Path = SERVE_CONFIG) -> dict[str, Any]:
    """The fraud application's entry in the Serve config file."""
    doc = yaml.safe_load(path.read_text())
    for application in doc.get("applications", []):
        if application.get("name") == "fraud":
            return dict(application)
    raise ValueError(f"{path} has no application named 'fraud'")


def user_config(deployment: str, path: Path = SERVE_CONFIG) -> dict[str, Any]:
    for d in fraud_app(path).get("deployments", []):
        if d.get("name") == deployment:
            return dict(d.get("user_config") or {})
    return {}


def served_engine(path: Path = SERVE_CONFIG, **overrides: Any) -> EngineConfig:
    """The engine settings the service runs with (`args.engine`: label delay, capacities,
    currency table), so offline features are the service's; the defaults where the file
    sets none or is absent."""
    engine: dict[str, Any] = {}
    if path.exists():
        engine = fraud_app(path).get("args", {}).get("engine") or {}
    return EngineConfig.model_validate({**engine, **overrides})


def served_model_dir(path: Path = SERVE_CONFIG) -> Path:
    """The model directory the ModelScorer deployment serves."""
    model_dir = Path(user_config("ModelScorer", path).get("model_dir", "models/default"))
    return model_dir if model_dir.is_absolute() else REPO_ROOT / model_dir


def served_thresholds(card: ModelCard, path: Path = SERVE_CONFIG) -> Thresholds:
    """Thresholds from the Ingress user_config if set there, else the model card's."""
    configured = user_config("Ingress", path).get("thresholds") if path.exists() else None
    return Thresholds(**configured) if configured else card.thresholds
