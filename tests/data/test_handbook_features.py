"""The engine's 14 derived handbook features equal the book's pandas definitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.config import EngineConfig
from features.offline import offline_features
from features.transactions import normalise

DELAY = 7


def book_customer_features(tx: pd.DataFrame) -> pd.DataFrame:
    """The handbook's `get_customer_spending_behaviour_features`, written plainly."""
    tx = tx.sort_values("timestamp", kind="stable").set_index("timestamp")
    out = pd.DataFrame(index=tx["transaction_id"].to_numpy())
    for n in (1, 7, 30):
        count = tx["amount"].rolling(f"{n}D").count().to_numpy()
        total = tx["amount"].rolling(f"{n}D").sum().to_numpy()
        out[f"CUSTOMER_ID_NB_TX_{n}DAY_WINDOW"] = count
        out[f"CUSTOMER_ID_AVG_AMOUNT_{n}DAY_WINDOW"] = total / count
    return out


def book_terminal_features(tx: pd.DataFrame, delay: int = DELAY) -> pd.DataFrame:
    """The handbook's `get_count_risk_rolling_window` for one terminal."""
    tx = tx.sort_values("timestamp", kind="stable").set_index("timestamp")
    fraud = tx["is_fraud"].astype(float)
    nb_fraud_delay = fraud.rolling(f"{delay}D").sum()
    nb_tx_delay = fraud.rolling(f"{delay}D").count()
    out = pd.DataFrame(index=tx["transaction_id"].to_numpy())
    for n in (1, 7, 30):
        nb_fraud = (fraud.rolling(f"{delay + n}D").sum() - nb_fraud_delay).to_numpy()
        nb_tx = (fraud.rolling(f"{delay + n}D").count() - nb_tx_delay).to_numpy()
        out[f"TERMINAL_ID_NB_TX_{n}DAY_WINDOW"] = nb_tx
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"TERMINAL_ID_RISK_{n}DAY_WINDOW"] = np.nan_to_num(nb_fraud / nb_tx)
    return out


def compare_with_book(tx: pd.DataFrame, n_groups: int, seed: int) -> int:
    ours = offline_features(tx, EngineConfig(label_delay_days=DELAY)).set_index("transaction_id")
    rng = np.random.default_rng(seed)
    users = rng.choice(tx["user_id"].unique(), n_groups, replace=False)
    terminals = rng.choice(tx["terminal_id"].unique(), n_groups, replace=False)
    checked = 0
    for key, book_fn, values in (
        ("user_id", book_customer_features, users),
        ("terminal_id", book_terminal_features, terminals),
    ):
        for v in values:
            want = book_fn(tx[tx[key] == v])
            got = ours.loc[want.index, want.columns]
            np.testing.assert_allclose(
                got.to_numpy(), want.to_numpy(), rtol=1e-9, atol=1e-9, err_msg=f"{key}={v}"
            )
            checked += want.size
    return checked


def test_weekend_and_night_match_pandas(small_stream: pd.DataFrame) -> None:
    ours = (
        offline_features(small_stream)
        .set_index("transaction_id")
        .loc[small_stream["transaction_id"]]
    )
    ts = small_stream["timestamp"]
    np.testing.assert_array_equal(ours["TX_DURING_WEEKEND"], (ts.dt.day_of_week >= 5).astype(float))
    np.testing.assert_array_equal(ours["TX_DURING_NIGHT"], (ts.dt.hour <= 6).astype(float))
    np.testing.assert_array_equal(ours["TX_AMOUNT"], small_stream["amount"])


def test_book_features_on_simulated_stream(small_stream: pd.DataFrame) -> None:
    assert compare_with_book(small_stream, n_groups=60, seed=0) > 10_000


@pytest.mark.slow
def test_book_features_on_handbook_data(handbook_path: Path) -> None:
    tx = normalise(pd.read_parquet(handbook_path))
    tx = tx[tx["timestamp"] < pd.Timestamp("2018-06-15")]  # 75 days: every window fills
    assert compare_with_book(tx, n_groups=80, seed=1) > 50_000
