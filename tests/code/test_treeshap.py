"""The per-leaf TreeSHAP tables give XGBoost's own exact TreeSHAP values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from features.spec import FEATURE_NAMES
from models.card import BOOSTER_FILE
from models.treeshap import load_tables, shap_values

REPO = Path(__file__).resolve().parents[2]
BINARY = ("TX_DURING_WEEKEND", "TX_DURING_NIGHT", "USER_NEW_TERMINAL", "TERMINAL_ID_LAST_LABEL")


def xgboost_exact(booster: xgb.Booster, x: np.ndarray) -> np.ndarray:
    contribs = booster.predict(xgb.DMatrix(x.astype(np.float32)), pred_contribs=True)
    return np.asarray(contribs)[:, :-1]


def test_default_model_matches_pred_contribs_including_missing_values() -> None:
    path = REPO / "models" / "default" / BOOSTER_FILE
    booster = xgb.Booster()
    booster.load_model(str(path))
    booster.feature_names = None
    rng = np.random.default_rng(11)
    n = len(FEATURE_NAMES)
    x = rng.gamma(1.5, 30.0, size=(300, n)) * rng.choice([0.01, 1, 10], size=(300, n))
    flags = [FEATURE_NAMES.index(f) for f in BINARY]
    x[:, flags] = rng.integers(0, 2, size=(300, len(flags)))
    x[rng.random(x.shape) < 0.05] = np.nan  # default directions are taken too
    ours = shap_values(load_tables(path), x)
    assert ours.shape == (300, n)
    np.testing.assert_allclose(ours, xgboost_exact(booster, x), atol=1e-5)


def test_deep_trees_that_split_a_feature_again_on_one_path(tmp_path: Path) -> None:
    """Three features and depth 8: most paths test a feature several times, which is where
    TreeSHAP merges the splits (the zero fraction is their product)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4000, 3))
    y = ((x[:, 0] * x[:, 1] > 0.2) ^ (np.sin(3 * x[:, 2]) > 0.5)).astype(int)
    x[rng.random(x.shape) < 0.1] = np.nan
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 8, "eta": 0.3, "nthread": 1},
        xgb.DMatrix(x.astype(np.float32), label=y),
        num_boost_round=30,
    )
    booster.save_model(str(tmp_path / BOOSTER_FILE))
    tables = load_tables(tmp_path / BOOSTER_FILE)
    assert int(np.diff(tables.cond_start).max()) > int(np.diff(tables.feat_start).max())
    probe = rng.normal(size=(200, 3))
    probe[rng.random(probe.shape) < 0.1] = np.nan
    np.testing.assert_allclose(shap_values(tables, probe), xgboost_exact(booster, probe), atol=1e-5)


def test_one_row_and_no_rows() -> None:
    tables = load_tables(REPO / "models" / "default" / BOOSTER_FILE)
    assert shap_values(tables, np.ones((1, len(FEATURE_NAMES)))).shape == (1, len(FEATURE_NAMES))
    assert shap_values(tables, np.empty((0, len(FEATURE_NAMES)))).shape == (0, len(FEATURE_NAMES))


def test_categorical_splits_are_refused(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"c": pd.Categorical(["a", "b", "c", "a"] * 50), "n": range(200)})
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2, "tree_method": "hist"},
        xgb.DMatrix(frame, label=np.arange(200) % 2, enable_categorical=True),
        num_boost_round=2,
    )
    booster.save_model(str(tmp_path / BOOSTER_FILE))
    with pytest.raises(ValueError, match="categorical"):
        load_tables(tmp_path / BOOSTER_FILE)
