"""The model a scorer replica serves, swappable while requests are in flight.

The loader is injected (as in Ray's XGBoost serving example) so the scorer can be tested
with a fake model; by default it is `models.onnx.load_model`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from actors.paths import REPO_ROOT
from models.card import ModelCard
from models.explain import Explainer
from models.onnx import load_model


class Scorer(Protocol):
    @property
    def version(self) -> str: ...

    @property
    def card(self) -> ModelCard: ...

    def score(self, x: np.ndarray) -> np.ndarray: ...


class Explains(Protocol):
    def contributions(self, x: np.ndarray, approx: bool = False) -> np.ndarray: ...


Loader = Callable[[Path], Scorer]
ExplainerLoader = Callable[[Path], Explains]


def resolve_model_dir(model_dir: str | Path) -> Path:
    """Relative model paths are relative to the repository root, wherever Serve runs us."""
    path = Path(model_dir)
    return path if path.is_absolute() else REPO_ROOT / path


def onnx_loader(threads: int = 1) -> Loader:
    return lambda path: load_model(path, threads=threads)


@dataclass(frozen=True)
class Scored:
    """One request's scores, the version that made them, and the shadow model's (if any)."""

    scores: np.ndarray
    version: str
    shadow_scores: np.ndarray | None = None
    shadow_version: str | None = None


class ModelVersions:
    """Holds the live model (and an optional shadow); `load` builds first, then swaps."""

    def __init__(self, loader: Loader, explainer_loader: ExplainerLoader | None = None) -> None:
        self._loader = loader
        self._explainer_loader = explainer_loader or Explainer
        self._model: Scorer | None = None
        self.model_dir: Path | None = None
        self.shadow: Scorer | None = None
        self.shadow_dir: Path | None = None
        self._explainers: dict[str, Any] = {}

    def load(self, model_dir: str | Path, shadow_dir: str | Path | None = None) -> str:
        """Load the live model (and the shadow, or none); nothing changes if either fails."""
        path = resolve_model_dir(model_dir)
        model = self._loader(path)  # raises before anything changes if the model is bad
        shadow_path = resolve_model_dir(shadow_dir) if shadow_dir else None
        shadow = self._loader(shadow_path) if shadow_path else None
        self._model, self.model_dir = model, path
        self.shadow, self.shadow_dir = shadow, shadow_path
        return model.version

    @property
    def model(self) -> Scorer:
        if self._model is None:
            raise RuntimeError("no model loaded")
        return self._model

    def score_many(self, batches: Sequence[np.ndarray]) -> list[Scored]:
        """Score several requests' rows in one model call; each gets the version that scored it."""
        model, shadow = self.model, self.shadow  # one reference each: a swap cannot split a batch
        sizes = [len(b) for b in batches]
        x = np.concatenate(batches) if sum(sizes) else None
        scores = model.score(x) if x is not None else np.empty(0)
        shadow_scores = shadow.score(x) if shadow is not None and x is not None else None
        out, start = [], 0
        for n in sizes:
            part = slice(start, start + n)
            out.append(
                Scored(
                    scores[part],
                    model.version,
                    shadow_scores[part] if shadow_scores is not None else None,
                    shadow.version if shadow is not None else None,
                )
            )
            start += n
        return out

    def explain(self, x: np.ndarray, approx: bool = False) -> tuple[np.ndarray, str]:
        """TreeSHAP contributions of the live model for these rows (loaded on first use)."""
        model = self.model
        explainer = self._explainers.get(model.version)
        if explainer is None:
            if self.model_dir is None:
                raise RuntimeError("no model loaded")
            explainer = self._explainer_loader(self.model_dir)
            self._explainers = {model.version: explainer}  # keep only the live model's
        return explainer.contributions(x, approx), model.version
