"""The in-process model follows the ModelScorer's card and falls back to it (no Ray)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from actors.errors import Unavailable
from deployments.model.inprocess import InProcessModel
from deployments.model.served import ServedModel
from deployments.model.versions import Scored
from features.spec import FEATURE_NAMES
from models.card import ModelDir


class FakeScorer:
    loads = 0

    def __init__(self, path: Path) -> None:
        FakeScorer.loads += 1
        if path.name == "missing":
            raise FileNotFoundError(path)
        self.version, self.card = path.name, {}

    def score(self, x: np.ndarray) -> np.ndarray:
        if self.version == "broken":
            raise ValueError("graph wants 19 inputs")
        return np.full(len(x), 0.25)


class FakeExplainer:
    def __init__(self, path: Path) -> None:
        self.path = path

    def contributions(self, x: np.ndarray, approx: bool = False) -> np.ndarray:
        return np.zeros_like(x)


class RemoteStub:
    def __init__(self) -> None:
        self.calls = 0

    async def score(self, x: np.ndarray) -> Scored:
        self.calls += 1
        return Scored(np.full(len(x), 0.75), "remote")

    async def explain(self, x: np.ndarray, approx: bool = False) -> tuple[np.ndarray, str]:
        self.calls += 1
        return np.ones_like(x), "remote"


DEFAULT_CARD = ModelDir(Path(__file__).resolve().parents[2] / "models" / "default").read_card()


def card(model_dir: str, version: str | None = None) -> ServedModel:
    """What the ModelScorer would answer while serving `model_dir`."""
    v = version or Path(model_dir).name
    return ServedModel(
        version=v, card=DEFAULT_CARD.model_copy(update={"version": v}), model_dir=model_dir
    )


def model() -> tuple[InProcessModel, RemoteStub]:
    remote = RemoteStub()
    follower = InProcessModel(remote, FakeScorer, FakeExplainer)  # type: ignore[arg-type]
    return follower, remote


def test_scores_locally_once_it_has_loaded_what_the_card_names() -> None:
    follower, remote = model()
    x = np.zeros((3, len(FEATURE_NAMES)))

    async def scenario() -> list[str]:
        versions = [(await follower.score(x)).version]  # nothing loaded yet: remote
        await follower.follow(card("/models/v1"))
        versions.append((await follower.score(x)).version)
        await follower.follow(card("/models/v2"))  # a promote: the next batch uses v2
        versions.append((await follower.score(x)).version)
        return versions

    assert asyncio.run(scenario()) == ["remote", "v1", "v2"]
    assert remote.calls == 1


@pytest.mark.parametrize(
    "bad_card", [card("/models/missing"), card("/models/v3", version="other-version")]
)
def test_falls_back_to_the_model_scorer_when_the_copy_is_not_the_same(
    bad_card: ServedModel,
) -> None:
    follower, _ = model()
    x = np.zeros((2, len(FEATURE_NAMES)))

    async def scenario() -> str:
        await follower.follow(card("/models/v1"))
        await follower.follow(bad_card)  # unreadable here, or not the version served
        loads = FakeScorer.loads
        await follower.follow(bad_card)  # the same card again: not tried again every tick
        assert FakeScorer.loads == loads
        return (await follower.score(x)).version

    assert asyncio.run(scenario()) == "remote" and not follower.local


def test_a_model_that_cannot_score_is_a_503_not_a_legit() -> None:
    follower, _ = model()

    async def scenario() -> None:
        await follower.follow(card("/models/broken"))
        await follower.score(np.zeros((1, len(FEATURE_NAMES))))

    with pytest.raises(Unavailable) as e:
        asyncio.run(scenario())
    assert e.value.reason == "model_failed"
