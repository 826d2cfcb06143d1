"""Behaviour tests of the served model (training/behaviour.py): minimum functionality,
invariance and direction, on a fresh stream the model never saw; and the checks fail where
a model misbehaves, and stop `fraud train` from saving it."""

from __future__ import annotations

from dataclasses import replace
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


def _own_history(stream: pd.DataFrame) -> pd.DataFrame:
    """A team's history as it comes: no scenario column, and genuine payments above 220
    (a quarter of the cards spend three times as much)."""
    own = stream.drop(columns=["fraud_scenario"]).copy()
    rich = own["user_id"].astype(int) % 4 == 0
    own.loc[rich & (own["is_fraud"] == 0), "amount"] *= 3.0
    assert ((own["amount"] > 220) & (own["is_fraud"] == 0)).sum() > 1000
    return own


def test_a_check_whose_pattern_the_data_lacks_is_not_applicable(
    fresh_stream: pd.DataFrame,
) -> None:
    from policy.expressions import parse

    model = load_model(REPO / "models" / "default")
    cfg, th, start = model.card.engine_config, model.card.thresholds, since(fresh_stream)
    declared = (parse("amount > 100000"), parse("amount < 3 and tx_count_1h >= 1"))
    checks = behaviour_checks(_own_history(fresh_stream), model.score, th, cfg, start, declared)
    status = {c.name: c.status for c in checks}
    assert status == {
        "flags every amount above 220": "not applicable",
        "flags every card-testing burst": "not applicable",
        "flags every transaction where amount > 100000": "not applicable",
        "flags every transaction where amount < 3 and tx_count_1h >= 1": "FAIL",
        "renaming ids changes no score": "pass",
        "a larger amount deviation never lowers a score": "pass",
    }
    small = next(c for c in checks if c.name.endswith("tx_count_1h >= 1"))
    assert small.failed and small.cases > 0  # a declared pattern is held to it
    assert not any(c.failed for c in checks if c.name != small.name)


def test_train_saves_a_model_of_a_history_without_the_simulators_patterns(
    fresh_stream: pd.DataFrame, tmp_path: Path
) -> None:
    """The issue's case: no scenario labels, genuine amounts above 220. The model is saved
    and its card says which checks ran and which could not apply."""
    import json

    from tests.model.test_training import SMALL
    from training.pipeline import train_model

    path = tmp_path / "own.parquet"
    _own_history(fresh_stream).to_parquet(path)
    out = tmp_path / "own-model"
    opts = replace(SMALL, expect_flagged=("amount > 100000",))
    train_model(path, out, opts, say=lambda _: None)
    card = json.loads((out / "model_card.json").read_text())
    behaviour = card["training"]["behaviour"]
    assert behaviour["passed"]
    assert behaviour["ran"] == [
        "renaming ids changes no score",
        "a larger amount deviation never lowers a score",
    ]
    assert behaviour["not_applicable"] == [
        "flags every amount above 220",
        "flags every card-testing burst",
        "flags every transaction where amount > 100000",
    ]
    assert {c["status"] for c in behaviour["checks"]} == {"pass", "not applicable"}
