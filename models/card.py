"""A model directory and its card, read and written in one place.

`ModelDir` knows the files (`model.onnx`, `model.json`, `model_card.json`, two plots);
`ModelCard` is the card's typed form, so every reader gets fields, not nested dict lookups.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from features.config import EngineConfig
from features.spec import FEATURE_NAMES
from policy.decision import Thresholds

ONNX_FILE = "model.onnx"
BOOSTER_FILE = "model.json"  # XGBoost's own format: the reasons' TreeSHAP tables
CARD_FILE = "model_card.json"
PLOT_FILE = "thresholds.png"  # detection and false-positive rates vs thresholds (test block)
COST_PLOT_FILE = "cost_thresholds.png"  # expected cost vs thresholds (validation block)


class ModelError(RuntimeError):
    """A model directory is missing, unreadable or built for other features."""


class CostThresholds(BaseModel):
    """The thresholds that minimise expected cost on validation, and that cost."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    review: float
    block: float
    cost_model: dict[str, float]
    n_transactions: int
    cost: dict[str, float]
    cost_at_current: dict[str, Any]

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(review=self.review, block=self.block)


class ModelCard(BaseModel):
    """What `fraud train` records about a model: identity, inputs, thresholds, provenance,
    metrics. Unknown fields are refused, so a card from another tool fails loudly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    created_utc: str
    features: list[str]
    input: dict[str, Any]
    output: str
    thresholds: Thresholds
    cost_thresholds: CostThresholds | None = None
    engine_config: EngineConfig = EngineConfig()
    training: dict[str, Any] = {}
    data: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    onnx_parity_max_abs_diff: float | None = None
    libraries: dict[str, str] = {}


class ModelDir:
    """The files of one model directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def onnx(self) -> Path:
        return self.path / ONNX_FILE

    @property
    def booster(self) -> Path:
        return self.path / BOOSTER_FILE

    @property
    def card_file(self) -> Path:
        return self.path / CARD_FILE

    @property
    def plot(self) -> Path:
        return self.path / PLOT_FILE

    @property
    def cost_plot(self) -> Path:
        return self.path / COST_PLOT_FILE

    def read_card(self) -> ModelCard:
        """The card; `ModelError` if it is missing, malformed, or for other features."""
        try:
            card = ModelCard.model_validate_json(self.card_file.read_bytes())
        except FileNotFoundError as e:
            raise ModelError(f"{self.path} is not a model directory: {e.filename} missing") from e
        except ValidationError as e:
            raise ModelError(f"{self.card_file}: not a model card ({e.error_count()} errors: "
                             f"{e.errors()[0]['loc']} {e.errors()[0]['msg']})") from e  # fmt: skip
        if tuple(card.features) != FEATURE_NAMES:
            raise ModelError(
                f"model {self.path} was trained on features {card.features}, "
                f"this engine computes {list(FEATURE_NAMES)}"
            )
        return card

    def read_onnx(self) -> bytes:
        try:
            return self.onnx.read_bytes()
        except FileNotFoundError as e:
            raise ModelError(f"{self.path} is not a model directory: {e.filename} missing") from e

    def write(self, onnx_bytes: bytes, booster_json: bytes, card: ModelCard) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.onnx.write_bytes(onnx_bytes)
        self.booster.write_bytes(booster_json)
        self.card_file.write_text(json.dumps(card.model_dump(mode="json"), indent=2) + "\n")
