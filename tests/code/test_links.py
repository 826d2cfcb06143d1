"""Entities beyond card and terminal: devices, IP addresses, emails and a card's merchant
countries, each keyed state through one kernel (`features.kernels.link_step`), online =
offline, recorded once per transaction, kept across a shard restart and a checkpoint."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd

from actors.actor.shards import TerminalShard
from actors.client.local import LocalShardClient
from actors.events import LinkEvents, journal_op, journal_record
from actors.store.backends import MemoryStore
from deployments.http.schemas import TransactionIn
from deployments.scoring.pipeline import ScoringPipeline
from features.engine import FeatureEngine
from features.gateway import Gateway
from features.offline import offline_features
from features.spec import FEATURE_NAMES, FEATURES, LINK_STATS, LINKS
from features.state import LinkStore
from features.transactions import normalise, sort_by_event_time
from policy.decision import Thresholds
from simulator.config import SimulationConfig
from simulator.generate import generate_days
from simulator.replay import tx_bodies
from tests.code.test_pipeline import FakeModel

T0 = 1_600_000_000_000
MIN = 60_000
COL = {n: i for i, n in enumerate(FEATURE_NAMES)}


def test_link_windows_count_cards_and_first_times() -> None:
    """One device used by cards a, b, a, c within an hour, then d two hours later."""
    engine = FeatureEngine()
    cards = ["a", "b", "a", "c", "d", "e"]
    times = np.array([0, 10, 20, 30, 150, 160], np.int64) * MIN + T0
    n = len(cards)
    gateway = Gateway(
        channel=["ecommerce", "ecommerce", "card_present", None, "mail_telephone", None],
        bin_country=["US", "US", "DE", None, "FR", "FR"],
        merchant_country=["US", "GB", "DE", "US", "US", None],
        device_id=["d1", "d1", "d1", "d1", "d1", None],
        ip=["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.1", None],
        email=["x@e.com", "x@e.com", None, "x@e.com", "y@e.com", None],
    )
    x = engine.transact(
        cards, ["k"] * n, times, np.full(n, 5.0), np.arange(n, dtype=np.int64), gateway
    )

    def col(name: str) -> list[float]:
        return x[:, COL[name]].tolist()

    assert col("DEVICE_NB_CARDS_1HOUR_WINDOW")[:5] == [1, 2, 2, 3, 1]
    assert col("DEVICE_NB_CARDS_1DAY_WINDOW")[:5] == [1, 2, 2, 3, 4]
    assert col("USER_DEVICE_NB_TX_30DAY_WINDOW")[:5] == [0, 0, 1, 0, 0]
    assert col("IP_NB_CARDS_1HOUR_WINDOW")[:5] == [1, 2, 1, 3, 1]
    assert col("EMAIL_NB_TX_1DAY_WINDOW")[:2] == [1, 2]
    assert col("EMAIL_NB_TX_1DAY_WINDOW")[3:5] == [3, 1]
    assert col("EMAIL_NB_CARDS_1DAY_WINDOW")[3] == 3
    assert col("USER_COUNTRY_NB_TX_30DAY_WINDOW")[:5] == [0, 0, 0, 0, 0]
    assert col("TX_CARD_NOT_PRESENT")[:3] == [1, 1, 0] and col("TX_CARD_NOT_PRESENT")[4] == 1
    assert (
        col("TX_BIN_COUNTRY_MISMATCH")[:3] == [0, 1, 0] and col("TX_BIN_COUNTRY_MISMATCH")[4] == 1
    )
    # a field the transaction does not carry leaves its features missing, not zero
    assert np.isnan(col("EMAIL_NB_TX_1DAY_WINDOW")[2])
    assert np.isnan(col("TX_CARD_NOT_PRESENT")[3]) and np.isnan(col("TX_BIN_COUNTRY_MISMATCH")[3])
    link_columns = [COL[s.name] for s in FEATURES if s.entity in LINKS]
    assert np.isnan(x[5, link_columns]).all() and np.isnan(x[5, COL["TX_CARD_NOT_PRESENT"]])
    # the same card in the same country again: no longer its first time there
    again = engine.transact(
        ["a"], ["k"], times[:1] + 200 * MIN, np.array([5.0]), np.array([99], np.int64),
        Gateway(["ecommerce"], ["US"], ["US"], [None], [None], [None]),
    )  # fmt: skip
    assert again[0, COL["USER_COUNTRY_NB_TX_30DAY_WINDOW"]] == 1


def test_a_transaction_delivered_again_is_recorded_once_with_its_first_features() -> None:
    store = LinkStore(64)
    slots = store.slots_for(["dev", "dev", "dev"])
    times = np.array([T0, T0 + MIN, T0 + 2 * MIN], np.int64)
    first, held = store.step(slots, times, np.array([1, 2, 3], np.int32), np.arange(3))
    assert not held.any()
    again, held = store.step(slots[1:2], times[1:2], np.array([2], np.int32), np.arange(1, 2))
    assert held.tolist() == [True]
    np.testing.assert_array_equal(again[0], first[1])  # as of its own place in the ring
    assert int(store.scalars["count_total"][0]) == 3
    assert first[:, LINK_STATS.index("cards_1h")].tolist() == [1, 2, 3]


def test_link_state_batched_equals_one_by_one_and_survives_a_checkpoint() -> None:
    rng = np.random.default_rng(4)
    n = 600
    ids = [f"l{i}" for i in rng.integers(0, 12, n)]
    times = T0 + np.sort(rng.integers(0, 40 * 86_400_000, n))
    cards = rng.integers(0, 30, n).astype(np.int32)
    keys = np.arange(n, dtype=np.int64)
    whole = LinkStore(16)  # small: rings hit the capacity and drop their oldest
    want, _ = whole.step(whole.slots_for(ids), times, cards, keys)
    single = LinkStore(16)
    got = []
    for i in range(n):
        if i == n // 2:  # a checkpoint (whole, then a delta folded in) and a restore
            base = single.capture(full=True)
            single = LinkStore.from_form(LinkStore.merge(base, single.capture(full=False)), 16)
        got.append(single.step(single.slots_for(ids[i : i + 1]), times[i : i + 1],
                               cards[i : i + 1], keys[i : i + 1])[0])  # fmt: skip
    np.testing.assert_array_equal(np.concatenate(got), want)
    assert whole.overflow_total > 0


def test_a_restarted_terminal_shard_rebuilds_its_links_from_the_journal() -> None:
    store = MemoryStore()
    shard = TerminalShard(0, 1, {}, store)
    events = LinkEvents(
        ["dev", "dev", "ip"], np.array([0, 0, 1], np.int8), np.array([T0, T0 + MIN, T0 + MIN]),
        np.array([1, 2, 2], np.int32), np.array([1, 2, 3]),
    )  # fmt: skip
    shard.process_links(events)
    again = TerminalShard(0, 1, {}, store)  # recovers from the journal
    later = LinkEvents(
        ["dev"], np.array([0], np.int8), np.array([T0 + 2 * MIN]), np.array([3], np.int32),
        np.array([4]),
    )  # fmt: skip
    b = again.process_links(later)
    alone = LinkStore(64)  # the same events in one store, never restarted
    ids = [*events.link_keys, *later.link_keys]
    want, _ = alone.step(alone.slots_for(ids), np.array([*events.times, *later.times]),
                         np.array([1, 2, 2, 3], np.int32), np.arange(1, 5))  # fmt: skip
    np.testing.assert_array_equal(b.features[0], want[-1])
    assert b.features[0, LINK_STATS.index("cards_1h")] == 3
    assert again.stats()["link_events"] == 4 and again.stats()["links"] == 2
    back = journal_op(journal_record(events))  # the journal's one encoding
    assert isinstance(back, LinkEvents)
    assert back.link_keys == events.link_keys and back.cards.tolist() == [1, 2, 2]


def _gateway_stream() -> pd.DataFrame:
    cfg = SimulationConfig(
        n_customers=150, n_terminals=300, n_days=6, seed=11, device_farms_per_day=1,
        takeovers_per_day=1, cross_border_per_day=1,
    )  # fmt: skip
    df = normalise(pd.concat(list(generate_days(cfg)), ignore_index=True))
    return sort_by_event_time(df).reset_index(drop=True)


def test_the_gateway_stream_scores_online_as_offline() -> None:
    """Every feature, new entities included, equal online (the pipeline over in-process
    shards, in batches, with retries) and offline (replay) to 1e-9; missing where missing."""
    df = _gateway_stream()
    assert df["device_id"].notna().sum() > 100 and df["device_id"].isna().sum() > 100
    offline = offline_features(df).set_index("transaction_id")
    p = ScoringPipeline(LocalShardClient(2, 2), FakeModel(), Thresholds())
    txs = [TransactionIn.model_validate(b) for b in tx_bodies(df)]

    async def go() -> list[dict[str, float]]:
        got = []
        for a in range(0, len(txs), 16):
            got += [o.features for o in await p.score(txs[a : a + 16], True)]  # type: ignore[misc]
            await p.score(txs[a : a + 2], True)  # retries: recorded once
        return got

    online = pd.DataFrame(asyncio.run(go()), index=df["transaction_id"].astype(str))
    want = offline.set_index(offline.index.astype(str)).loc[online.index, list(FEATURE_NAMES)]
    np.testing.assert_allclose(
        online[list(FEATURE_NAMES)].to_numpy(), want.to_numpy(), rtol=1e-9, atol=1e-9
    )  # NaN where NaN (equal_nan)
    farm = df["fraud_scenario"].to_numpy() == 5
    assert farm.any()
    assert want["DEVICE_NB_CARDS_1HOUR_WINDOW"].to_numpy()[farm].max() >= 5


def test_link_features_equal_their_definition_out_of_order_too() -> None:
    """Against a direct count: distinct cards and counts over the events that arrived up
    to each one with a time at or before it (its place in time order), and its card's
    earlier events in (t - 30 d, t); a tenth of the stream arrives up to two hours late."""
    rng = np.random.default_rng(8)
    n = 1500
    links = rng.integers(0, 5, n)
    times = T0 + np.sort(rng.integers(0, 3 * 86_400_000, n))
    late = rng.random(n) < 0.1
    times[late] -= rng.integers(0, 2 * 3_600_000, late.sum())
    cards = rng.integers(0, 40, n).astype(np.int32)
    store = LinkStore(100_000)
    got, _ = store.step(store.slots_for([str(v) for v in links]), times, cards, np.arange(n))
    hour, day = 3_600_000, 86_400_000
    for i in range(0, n, 7):
        before = np.flatnonzero((links[: i + 1] == links[i]) & (times[: i + 1] <= times[i]))
        t = times[i]
        in_day = before[times[before] > t - day]
        in_hour = before[times[before] > t - hour]
        want = {
            "count_1h": len(in_hour),
            "count_1d": len(in_day),
            "cards_1h": len(set(cards[in_hour].tolist())),
            "cards_1d": len(set(cards[in_day].tolist())),
            "card_earlier": int(((cards[before] == cards[i]) & (times[before] < t)).sum()),
        }
        assert dict(zip(LINK_STATS, got[i].tolist(), strict=True)) == want, i
