"""The simulator reproduces the handbook's statistics and is deterministic per seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.transactions import COLUMNS
from simulator import gateway
from simulator.config import SimulationConfig
from simulator.generate import generate_days, write_parquet


@pytest.fixture(scope="module")
def book_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    path = tmp_path_factory.mktemp("book") / "book.parquet"
    return path, write_parquet(SimulationConfig.handbook(), path)


def test_book_parameters_give_book_statistics(book_run: tuple[Path, dict[str, float]]) -> None:
    _, s = book_run
    # The book's file: 9,586 tx/day, fraud rate 0.837 %, scenario shares 6.6 / 61.8 / 31.5 %.
    assert s["transactions_per_day"] == pytest.approx(9_586, rel=0.04)
    assert s["fraud_rate"] == pytest.approx(0.00837, rel=0.12)
    frauds = s["frauds"]
    assert s["scenario_1"] / frauds == pytest.approx(0.066, abs=0.02)
    assert s["scenario_2"] / frauds == pytest.approx(0.618, abs=0.06)
    assert s["scenario_3"] / frauds == pytest.approx(0.315, abs=0.05)
    assert s["scenario_4"] == 0


def test_file_schema_and_time_order(book_run: tuple[Path, dict[str, float]]) -> None:
    path, s = book_run
    pf = pq.ParquetFile(path)
    assert pf.metadata.num_row_groups == 183  # one per day: readers can stream it
    # the schema every loader expects, then the gateway's fields
    assert tuple(pf.schema_arrow.names) == COLUMNS + gateway.COLUMNS
    df = pd.read_parquet(path)
    assert len(df) == s["transactions"]
    assert df["timestamp"].is_monotonic_increasing
    assert df["transaction_id"].is_unique
    assert df["timestamp"].min() >= pd.Timestamp("2018-04-01")
    assert df["timestamp"].max() < pd.Timestamp("2018-10-01")
    assert (df["amount"] >= 0).all()
    assert df.loc[df["amount"] > 220, "is_fraud"].all()
    # Amounts and times follow the book: mean near 53.6, night share near the file's 17 %.
    assert df["amount"].mean() == pytest.approx(53.6, rel=0.06)
    assert (df["timestamp"].dt.hour <= 6).mean() == pytest.approx(0.174, abs=0.02)


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    cfg = SimulationConfig(n_customers=300, n_terminals=500, n_days=5, seed=11)
    a = pd.concat(generate_days(cfg))
    b = pd.concat(generate_days(cfg))
    c = pd.concat(generate_days(cfg.model_copy(update={"seed": 12})))
    pd.testing.assert_frame_equal(a, b)
    assert not a["amount"].equals(c["amount"])


def test_card_testing_bursts_are_small_fast_and_at_new_terminals() -> None:
    cfg = SimulationConfig(
        n_customers=500, n_terminals=2_000, n_days=10, seed=5, card_testing_per_day=3
    )
    df = pd.concat(generate_days(cfg))
    burst = df[df["fraud_scenario"] == 4]
    assert len(burst) >= 3 * 10 * cfg.card_testing_min_tx
    assert burst["is_fraud"].all()
    assert burst["amount"].max() <= 3.0
    span = burst.groupby([burst["user_id"], burst["timestamp"].dt.date])["timestamp"].agg(
        lambda s: (s.max() - s.min()).total_seconds()
    )
    assert span.max() <= cfg.card_testing_span_minutes * 60
    genuine = df[df["fraud_scenario"] != 4]
    used = set(zip(genuine["user_id"], genuine["terminal_id"], strict=True))
    new_share = np.mean(
        [(u, t) not in used for u, t in zip(burst["user_id"], burst["terminal_id"], strict=True)]
    )
    assert new_share > 0.9


def test_replay_bodies_are_what_the_api_takes_at_the_same_instants() -> None:
    """The replays send `tx_bodies`: each must validate as the API's `TransactionIn` and
    name the same instant (to the ms) and values as its row, tz-aware times included."""
    from deployments.http.schemas import TransactionIn
    from simulator.replay import tx_bodies

    cfg = SimulationConfig(n_customers=50, n_terminals=100, n_days=2, seed=3)
    df = pd.concat(list(generate_days(cfg)), ignore_index=True).head(300)
    df["timestamp"] = df["timestamp"].astype("datetime64[ns]") + pd.to_timedelta(
        np.arange(len(df)) % 1000, unit="ms"
    )  # sub-second parts survive
    aware = df.assign(timestamp=df["timestamp"].dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo"))
    for frame in (df, aware):
        bodies = tx_bodies(frame)
        txs = [TransactionIn.model_validate(b) for b in bodies]
        expected_ms = df["timestamp"].astype("datetime64[ms]").astype(np.int64).to_numpy()
        assert [t.time_ms for t in txs] == expected_ms.tolist()
        assert [t.transaction_id for t in txs] == df["transaction_id"].astype(str).tolist()
        assert [t.user_id for t in txs] == df["user_id"].astype(str).tolist()
        assert [t.terminal_id for t in txs] == df["terminal_id"].astype(str).tolist()
        assert [t.amount for t in txs] == df["amount"].tolist()


PARTS_CFG = SimulationConfig(
    n_customers=900,
    n_terminals=1_500,
    n_days=12,
    seed=8,
    card_testing_per_day=2,
    cards_per_block=100,
)


def test_the_stream_is_the_same_whatever_the_number_of_workers(
    ray_cluster: None, tmp_path: Path
) -> None:
    """Parts written by 1 or 3 Ray tasks, and the one-file writer, hold the same rows; each
    card lives in exactly one part; the manifest counts what was written."""
    from features.parts import read_manifest
    from features.transactions import read_transactions
    from simulator.distributed import generate_distributed

    one = tmp_path / "one.parquet"
    whole = write_parquet(PARTS_CFG, one)
    expected = read_transactions(one)
    assert len(expected) == whole["transactions"] > 10_000
    for workers in (1, 3):
        dest = tmp_path / f"k{workers}"
        stats = generate_distributed(PARTS_CFG, str(dest), workers)
        assert stats == whole
        manifest = read_manifest(dest)
        assert manifest.parts == workers and sum(manifest.rows) == len(expected)
        pd.testing.assert_frame_equal(read_transactions(dest), expected)
        cards = [set(read_transactions(dest, parts=[p])["user_id"]) for p in range(workers)]
        assert sum(len(c) for c in cards) == len(set().union(*cards))  # disjoint
    # Generation itself, without the files: part 1 of 3 is the same rows however read.
    part = pd.concat(generate_days(PARTS_CFG, 1, 3), ignore_index=True)
    pd.testing.assert_frame_equal(
        part, read_transactions(tmp_path / "k3", parts=[1]), check_dtype=False
    )


def test_a_partitioned_table_is_refused_unless_complete(tmp_path: Path) -> None:
    from features.parts import MANIFEST, PartsError, part_name
    from features.transactions import read_transactions
    from simulator.distributed import generate_distributed

    cfg = PARTS_CFG.model_copy(update={"n_days": 2})
    dest = tmp_path / "t"
    generate_distributed(cfg, f"file://{dest}", 1)  # a URI, as for s3://
    assert len(read_transactions(f"file://{dest}")) == len(read_transactions(dest)) > 0
    with pytest.raises(PartsError, match="not empty"):
        generate_distributed(cfg, str(dest), 1)  # old parts would mix with new ones
    with pytest.raises(ValueError, match="at most 9 workers"):
        generate_distributed(cfg, str(tmp_path / "many"), 10)
    assert not (tmp_path / "many").exists()
    (dest / MANIFEST).unlink()
    with pytest.raises(PartsError, match="did not finish"):
        read_transactions(dest)
    generate_distributed(cfg, str(tmp_path / "u"), 1)
    (tmp_path / "u" / part_name(0)).unlink()
    with pytest.raises(PartsError, match="missing"):
        read_transactions(tmp_path / "u")


GATEWAY_RUN = {"n_customers": 800, "n_terminals": 1_200, "n_days": 10, "seed": 8}


def test_gateway_scenarios_leave_the_handbooks_rows_as_they_were() -> None:
    """Scenarios 5-7 draw from random streams of their own: with them on, every other row
    (times, cards, terminals, amounts, labels, gateway fields) is the same as without."""
    off = pd.concat(generate_days(SimulationConfig(**GATEWAY_RUN)), ignore_index=True)
    on_cfg = SimulationConfig(
        **GATEWAY_RUN, device_farms_per_day=1, takeovers_per_day=2, cross_border_per_day=2
    )
    on = pd.concat(generate_days(on_cfg), ignore_index=True)
    rest = on[on["fraud_scenario"] < 5].drop(columns="transaction_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(rest, off.drop(columns="transaction_id"))
    assert on["transaction_id"].is_unique and on["timestamp"].is_monotonic_increasing
    counts = on["fraud_scenario"].value_counts()
    assert counts[5] > 100 and counts[6] > 20 and counts[7] > 10


def test_gateway_fields_are_what_the_api_takes_and_each_scenario_shows_its_sign() -> None:
    from deployments.http.schemas import TransactionIn
    from simulator.replay import tx_bodies

    cfg = SimulationConfig(
        **GATEWAY_RUN, device_farms_per_day=1, takeovers_per_day=2, cross_border_per_day=2
    )
    df = pd.concat(generate_days(cfg), ignore_index=True)
    for body in tx_bodies(df.sample(2_000, random_state=1)):
        TransactionIn.model_validate(body)  # every row, its gateway fields too, is valid
    web = df["channel"] == "ecommerce"
    assert df.loc[~web, ["device_id", "ip", "email"]].isna().all().all()  # card present
    assert df.loc[web, ["device_id", "ip", "email"]].notna().all().all()
    genuine = df[df["fraud_scenario"] == 0]
    assert (genuine["merchant_country"] == genuine["bin_country"]).mean() > 0.8  # at home
    farm = df[df["fraud_scenario"] == 5]
    # a bot ring: many cards from few devices, a $0 verification first for each card
    assert farm.groupby("device_id")["user_id"].nunique().max() >= 5
    assert (farm.groupby("user_id")["amount"].first() == 0).all()
    takeover = df[df["fraud_scenario"] == 6]
    assert (takeover["merchant_country"] != takeover["bin_country"]).all()
    own = {f"dev-{cfg.seed}-{c}-{k}" for c in takeover["user_id"] for k in (0, 1)}
    assert own & set(df["device_id"].dropna())  # the cards' own devices, as named
    assert not set(takeover["device_id"]) & own  # never the card's own device
    mine = [f"user{c}.p{cfg.seed}@mail.example" for c in takeover["user_id"]]
    assert (takeover["email"] == mine).all()  # the account's own email
    other = pd.concat(generate_days(cfg.model_copy(update={"seed": cfg.seed + 1})))
    for field in ("device_id", "ip", "email"):  # another seed: another population
        assert not set(df[field].dropna()) & set(other[field].dropna()), field
    cross = df[df["fraud_scenario"] == 7]
    assert (cross["merchant_country"] != cross["bin_country"]).all()
    assert (df.loc[df["fraud_scenario"] >= 5, "is_fraud"] == 1).all()
