"""Behaviour tests of the served model (training/behaviour.py): minimum functionality,
invariance and direction, on a fresh stream the model never saw; and the checks fail where
a model misbehaves, and stop `fraud train` from saving it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.spec import FEATURE_NAMES
from features.transactions import read_transactions
from models.onnx import load_model
from simulator.config import SimulationConfig
from simulator.generate import write_parquet
from training.behaviour import BehaviourError, Check, behaviour_checks

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fresh_stream(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """45 days of 1,500 cards, another seed than the default model was trained on."""
    path = tmp_path_factory.mktemp("behaviour") / "tx.parquet"
    cfg = SimulationConfig(
        n_customers=1_500, n_terminals=3_000, n_days=45, seed=11, card_testing_per_day=2
    )
    write_parquet(cfg, path)
    return read_transactions(path)


def since(stream: pd.DataFrame) -> pd.Timestamp:
    return stream["timestamp"].min() + pd.Timedelta(days=14)  # windows filled


def test_the_default_model_passes_every_behaviour_check(fresh_stream: pd.DataFrame) -> None:
    model = load_model(REPO / "models" / "default")
    checks = behaviour_checks(
        fresh_stream, model.score, model.card.thresholds, model.card.engine_config,
        since(fresh_stream),
    )  # fmt: skip
    assert {c.name for c in checks} == {
        "flags every amount above 220",
        "flags every card-testing burst",
        "renaming ids changes no score",
        "a larger amount deviation never lowers a score",
    }
    for c in checks:
        assert c.passed and c.cases > 0, c
    recorded = model.card.training["behaviour"]
    assert recorded["passed"] and len(recorded["checks"]) == 4  # the card says so too


def test_the_checks_fail_a_model_that_misbehaves(fresh_stream: pd.DataFrame) -> None:
    model = load_model(REPO / "models" / "default")
    deviation = FEATURE_NAMES.index("AMOUNT_DEVIATION")
    amount = FEATURE_NAMES.index("TX_AMOUNT")

    def blind_to_amounts(x: np.ndarray) -> np.ndarray:
        x = x.copy()
        x[:, amount] = 20.0
        x[:, deviation] = 1.0
        return model.score(x)

    def shy_of_deviation(x: np.ndarray) -> np.ndarray:
        return np.clip(model.score(x) - 0.01 * x[:, deviation], 0, 1)

    def by_name(checks: list[Check]) -> dict[str, bool]:
        return {c.name: c.passed for c in checks}

    cfg, th, start = model.card.engine_config, model.card.thresholds, since(fresh_stream)
    blind = by_name(behaviour_checks(fresh_stream, blind_to_amounts, th, cfg, start))
    assert not blind["flags every amount above 220"]
    shy = by_name(behaviour_checks(fresh_stream, shy_of_deviation, th, cfg, start))
    assert not shy["a larger amount deviation never lowers a score"]
    assert shy["renaming ids changes no score"]


def test_train_does_not_save_a_model_that_fails_a_check(
    small_stream_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.pipeline as pipeline
    from tests.model.test_training import SMALL

    failing = [Check("flags every amount above 220", False, 3, "2 of 3 not flagged")]
    monkeypatch.setattr(pipeline, "behaviour_checks", lambda *a, **k: failing)
    out = tmp_path / "refused"
    with pytest.raises(BehaviourError, match="2 of 3 not flagged"):
        pipeline.train_model(small_stream_path, out, SMALL, say=lambda _: None)
    assert not out.exists()
