"""The model a scorer replica serves, swappable while requests are in flight.

The loader is injected (as in Ray's XGBoost serving example) so the scorer can be tested
with a fake model; by default it is `features.onnx_model.load_model`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from features.onnx_model import load_model

REPO_ROOT = Path(__file__).resolve().parent.parent


class Scorer(Protocol):
    version: str
    card: dict[str, Any]

    def score(self, x: np.ndarray) -> np.ndarray: ...


Loader = Callable[[Path], Scorer]


def resolve_model_dir(model_dir: str | Path) -> Path:
    """Relative model paths are relative to the repository root, wherever Serve runs us."""
    path = Path(model_dir)
    return path if path.is_absolute() else REPO_ROOT / path


def onnx_loader(threads: int = 1) -> Loader:
    return lambda path: load_model(path, threads=threads)


class ModelHolder:
    """Holds the current model; `load` builds the new one first, then swaps the reference."""

    def __init__(self, loader: Loader) -> None:
        self._loader = loader
        self._model: Scorer | None = None
        self.model_dir: Path | None = None

    def load(self, model_dir: str | Path) -> str:
        path = resolve_model_dir(model_dir)
        model = self._loader(path)  # raises before anything changes if the model is bad
        self._model, self.model_dir = model, path
        return model.version

    @property
    def model(self) -> Scorer:
        if self._model is None:
            raise RuntimeError("no model loaded")
        return self._model

    def score_many(self, batches: Sequence[np.ndarray]) -> list[tuple[np.ndarray, str]]:
        """Score several requests' rows in one model call; each gets the version that scored it."""
        model = self.model  # one reference for the whole call: a swap cannot split a batch
        sizes = [len(b) for b in batches]
        scores = model.score(np.concatenate(batches)) if sum(sizes) else np.empty(0)
        out, start = [], 0
        for n in sizes:
            out.append((scores[start : start + n], model.version))
            start += n
        return out
