"""Window edge cases of the feature engine, on hand-made streams with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from features.config import EngineConfig
from features.engine import FeatureEngine, stateless_features
from features.kernels import STEP
from features.spec import FEATURE_NAMES
from features.state import TerminalStore, UserStore

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_530_000_000_000  # 2018-06-26 08:00 UTC, a Tuesday
COL = {name: i for i, name in enumerate(FEATURE_NAMES)}


def one(
    engine: FeatureEngine, user: str, t: int, amount: float, terminal: str = "T1", key: int = 0
) -> dict[str, float]:
    row = engine.transact([user], [terminal], np.array([t]), np.array([amount]), np.array([key]))[0]
    return {name: float(row[i]) for name, i in COL.items()}


def test_empty_history_gives_neutral_values() -> None:
    f = one(FeatureEngine(), "u", T0, 40.0)
    assert f["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1
    assert f["CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"] == 40.0
    assert f["AMOUNT_DEVIATION"] == 1.0
    assert f["SECONDS_SINCE_LAST_TX"] == -1.0
    assert f["USER_NEW_TERMINAL"] == 1.0
    assert f["USER_MAX_AMOUNT_DEVIATION_7DAY_WINDOW"] == 0.0
    assert f["TERMINAL_ID_NB_TX_7DAY_WINDOW"] == 0
    assert f["TERMINAL_ID_RISK_7DAY_WINDOW"] == 0.0
    assert f["TERMINAL_ID_LAST_LABEL"] == 0.0


def test_window_is_open_on_the_left_closed_on_the_right() -> None:
    e = FeatureEngine()
    one(e, "u", T0, 10.0)
    # Exactly one day later the first transaction has left the (t - 1d, t] window...
    f = one(e, "u", T0 + DAY, 30.0)
    assert f["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1
    assert f["CUSTOMER_ID_NB_TX_7DAY_WINDOW"] == 2
    assert f["CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW"] == 20.0
    # ...one millisecond earlier it is still inside.
    e2 = FeatureEngine()
    one(e2, "u", T0, 10.0)
    assert one(e2, "u", T0 + DAY - 1, 30.0)["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 2


def test_thirty_day_window_and_pruning() -> None:
    e = FeatureEngine()
    for d in range(40):
        one(e, "u", T0 + d * DAY, 1.0 + d)
    f = one(e, "u", T0 + 40 * DAY, 100.0)
    assert f["CUSTOMER_ID_NB_TX_30DAY_WINDOW"] == 30  # days 11..39 plus the current one
    assert f["CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"] == pytest.approx(
        (sum(1.0 + d for d in range(11, 40)) + 100.0) / 30
    )
    assert f["AMOUNT_DEVIATION"] == pytest.approx(100.0 / np.mean([1.0 + d for d in range(40)]))
    assert f["SECONDS_SINCE_LAST_TX"] == DAY / 1000


def test_same_timestamp_events_count_in_arrival_order() -> None:
    e = FeatureEngine()
    first = one(e, "u", T0, 10.0)
    second = one(e, "u", T0, 20.0)
    assert first["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1
    assert second["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 2
    assert second["SECONDS_SINCE_LAST_TX"] == 0.0
    assert second["USER_NB_TX_1HOUR_WINDOW"] == 2
    assert second["USER_AMOUNT_SUM_1HOUR_WINDOW"] == 30.0


def test_out_of_order_event_sees_only_its_past_and_is_counted_once() -> None:
    """Documented: a late event is scored as of its own time; later events are not counted
    in it, and it counts in windows of events that arrive after it."""
    e = FeatureEngine()
    one(e, "u", T0 + 2 * HOUR, 50.0)
    late = one(e, "u", T0, 10.0)
    assert late["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1
    assert late["SECONDS_SINCE_LAST_TX"] == -1.0
    after = one(e, "u", T0 + 3 * HOUR, 30.0)
    assert after["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 3
    assert after["CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW"] == 30.0
    assert after["SECONDS_SINCE_LAST_TX"] == 3600.0


def test_velocity_and_new_terminal() -> None:
    e = FeatureEngine()
    one(e, "u", T0, 5.0, "T1")
    one(e, "u", T0 + 10 * 60_000, 2.0, "T2")
    f = one(e, "u", T0 + 20 * 60_000, 3.0, "T1")
    assert f["USER_NB_TX_1HOUR_WINDOW"] == 3
    assert f["USER_AMOUNT_SUM_1HOUR_WINDOW"] == 10.0
    assert f["USER_NEW_TERMINAL"] == 0.0
    assert one(e, "u", T0 + 75 * 60_000, 1.0, "T9")["USER_NB_TX_1HOUR_WINDOW"] == 2
    assert one(e, "u", T0 + 91 * 60_000, 1.0, "T8")["USER_NEW_TERMINAL"] == 1.0


def test_max_deviation_is_the_largest_earlier_amount_in_the_window_over_the_mean() -> None:
    e = FeatureEngine()
    for d, amount in enumerate([10.0, 50.0, 10.0, 10.0]):
        one(e, "u", T0 + d * 3 * DAY, amount)  # days 0, 3, 6, 9; lifetime mean 20
    f = one(e, "u", T0 + 10 * DAY, 15.0)
    assert f["USER_MAX_AMOUNT_DEVIATION_7DAY_WINDOW"] == pytest.approx(10.0 / 20.0)  # 50 left
    assert f["USER_MAX_AMOUNT_DEVIATION_30DAY_WINDOW"] == pytest.approx(50.0 / 20.0)
    assert f["AMOUNT_DEVIATION"] == pytest.approx(15.0 / 20.0)
    # The current amount is not its own history: only the next transaction sees it.
    big = one(e, "u", T0 + 10 * DAY + 1, 500.0)
    assert big["USER_MAX_AMOUNT_DEVIATION_7DAY_WINDOW"] == pytest.approx(15.0 / 19.0)
    after = one(e, "u", T0 + 10 * DAY + 2, 1.0)
    assert after["USER_MAX_AMOUNT_DEVIATION_7DAY_WINDOW"] == pytest.approx(500.0 / (595.0 / 6))


def test_terminal_last_label_is_the_newest_labelled_transaction_past_the_delay() -> None:
    e = FeatureEngine(EngineConfig(label_delay_days=7))
    one(e, "a", T0, 10.0, "T", key=1)
    one(e, "b", T0 + HOUR, 10.0, "T", key=2)
    e.label(["T"], np.array([1]), np.array([1]))
    # Only tx 1 is past the delay: it is the newest there, and fraud.
    assert one(e, "c", T0 + 7 * DAY + 1, 10.0, "T", key=3)["TERMINAL_ID_LAST_LABEL"] == 1.0
    # Once legit tx 2 is past the delay it is the newest: the label is 0 again.
    assert one(e, "d", T0 + 7 * DAY + HOUR, 10.0, "T", key=4)["TERMINAL_ID_LAST_LABEL"] == 0.0
    # Two at the newest time: fraud if either is.
    one(e, "e", T0 + 2 * DAY, 10.0, "T", key=5)
    one(e, "f", T0 + 2 * DAY, 10.0, "T", key=6)
    e.label(["T"], np.array([6]), np.array([1]))
    assert one(e, "g", T0 + 9 * DAY, 10.0, "T", key=7)["TERMINAL_ID_LAST_LABEL"] == 1.0
    # Past the 30-day window nothing is left: 0.
    assert one(e, "h", T0 + 40 * DAY, 10.0, "T", key=8)["TERMINAL_ID_LAST_LABEL"] == 0.0


def test_terminal_risk_uses_labels_only_after_the_delay() -> None:
    e = FeatureEngine(EngineConfig(label_delay_days=7))
    one(e, "a", T0, 10.0, "T", key=1)
    one(e, "b", T0 + HOUR, 10.0, "T", key=2)
    # Fraud label for tx 1 arrives early; tx 2 is legit.
    assert e.label(["T"], np.array([1]), np.array([1])).tolist() == [True]
    inside_delay = one(e, "c", T0 + 3 * DAY, 10.0, "T", key=3)
    assert inside_delay["TERMINAL_ID_NB_TX_30DAY_WINDOW"] == 0
    # 7 days after tx 1 exactly: tx 1 is in (t-8d, t-7d], tx 2 is not yet.
    at_delay = one(e, "d", T0 + 7 * DAY, 10.0, "T", key=4)
    assert at_delay["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 1
    assert at_delay["TERMINAL_ID_RISK_1DAY_WINDOW"] == 1.0
    later = one(e, "e", T0 + 7 * DAY + 2 * HOUR, 10.0, "T", key=5)
    assert later["TERMINAL_ID_NB_TX_7DAY_WINDOW"] == 2
    assert later["TERMINAL_ID_RISK_7DAY_WINDOW"] == 0.5


def test_repeated_label_counts_once_and_can_be_reversed() -> None:
    e = FeatureEngine(EngineConfig(label_delay_days=1))
    one(e, "a", T0, 10.0, "T", key=7)
    one(e, "b", T0 + 1, 10.0, "T", key=8)
    for _ in range(3):
        e.label(["T"], np.array([7]), np.array([1]))
    f = one(e, "c", T0 + 2 * DAY, 10.0, "T", key=9)
    assert f["TERMINAL_ID_RISK_7DAY_WINDOW"] == 0.5
    e.label(["T"], np.array([7]), np.array([0]))
    assert one(e, "d", T0 + 2 * DAY, 10.0, "T", key=10)["TERMINAL_ID_RISK_7DAY_WINDOW"] == 0.0


def test_label_for_unknown_transaction_is_reported_not_applied() -> None:
    e = FeatureEngine()
    one(e, "a", T0, 10.0, "T", key=1)
    assert e.label(["T"], np.array([999]), np.array([1])).tolist() == [False]


def test_full_ring_drops_oldest_and_counts_overflow() -> None:
    e = FeatureEngine(EngineConfig(user_capacity=8))
    for i in range(12):
        f = one(e, "u", T0 + i * 1000, 1.0)
    assert f["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 9  # 8 kept + the current one
    assert e.users.overflow_total == 4


def test_stateless_weekend_and_night_in_utc() -> None:
    saturday_5am = 1_530_334_800_000  # 2018-06-30 05:00 UTC
    monday_7am = saturday_5am + 2 * DAY + 2 * HOUR
    out = stateless_features(np.array([saturday_5am, monday_7am]), np.array([1.0, 2.0]))
    assert out[:, :3].tolist() == [[1.0, 1.0, 1.0], [2.0, 0.0, 0.0]]
    assert np.isnan(out[:, 3:]).all()  # no gateway fields: missing, never zero


def test_snapshot_round_trip_continues_identically() -> None:
    rng = np.random.default_rng(0)
    e = FeatureEngine()
    users = [f"u{i}" for i in rng.integers(0, 20, 300)]
    terms = [f"t{i}" for i in rng.integers(0, 10, 300)]
    times = T0 + np.sort(rng.integers(0, 20 * DAY, 300))
    amounts = rng.uniform(1, 100, 300)
    e.transact(users[:200], terms[:200], times[:200], amounts[:200], np.arange(200))
    clone = FeatureEngine()
    clone.users = UserStore.from_form(e.users.capture(full=True), e.config.user_capacity)
    clone.terminals = TerminalStore.from_form(
        e.terminals.capture(full=True), e.config.terminal_capacity, e.config.label_delay_ms
    )
    a = e.transact(users[200:], terms[200:], times[200:], amounts[200:], np.arange(200, 300))
    b = clone.transact(users[200:], terms[200:], times[200:], amounts[200:], np.arange(200, 300))
    np.testing.assert_array_equal(a, b)


def test_batch_equals_one_by_one() -> None:
    """One call with many events runs the same arithmetic as many calls with one each."""
    rng = np.random.default_rng(1)
    n = 500
    users = [f"u{i}" for i in rng.integers(0, 30, n)]
    terms = [f"t{i}" for i in rng.integers(0, 15, n)]
    times = T0 + np.sort(rng.integers(0, 10 * DAY, n))
    amounts = np.round(rng.uniform(1, 100, n), 2)
    batch = FeatureEngine().transact(users, terms, times, amounts, np.arange(n))
    single = FeatureEngine()
    rows = [
        single.transact(
            [users[i]], [terms[i]], times[i : i + 1], amounts[i : i + 1], np.array([i])
        )[0]
        for i in range(n)
    ]
    np.testing.assert_array_equal(batch, np.array(rows))


def test_state_size_is_the_arena_plus_scalars_per_user() -> None:
    e = FeatureEngine()
    e.transact(["u1", "u2"], ["t", "t"], np.array([T0, T0]), np.array([1.0, 2.0]), np.arange(2))
    per_event = 4 + 4 + 4  # time offset, cents, terminal identity
    per_user = 8 + 4 + 4 + 8 + 4 + 8 + 8 + 8 + 4  # layout (offset, cap, head, base) + totals
    assert e.users.state_nbytes() == e.users.arena_slots * per_event + 2 * per_user
    assert e.users.arena_usage() == {
        "events_kept": 2,
        "ring_slots": 2 * STEP,
        "free_slots": 0,
        "spare_slots": e.users.arena_slots - 2 * STEP,
    }


def test_snapshot_of_wrapped_rings_continues_identically() -> None:
    cfg = EngineConfig(user_capacity=8, terminal_capacity=8)
    rng = np.random.default_rng(3)
    n = 400
    users = [f"u{i}" for i in rng.integers(0, 5, n)]
    terms = [f"t{i}" for i in rng.integers(0, 4, n)]
    times = T0 + np.sort(rng.integers(0, 3 * DAY, n))
    amounts = rng.uniform(1, 100, n)
    e = FeatureEngine(cfg)
    e.transact(users[:300], terms[:300], times[:300], amounts[:300], np.arange(300))
    assert e.users.overflow_total > 0 and (e.users.scalars["head"][:5] > 0).any()
    clone = FeatureEngine(cfg)
    clone.users = UserStore.from_form(e.users.capture(full=True), 8)
    clone.terminals = TerminalStore.from_form(e.terminals.capture(full=True), 8, cfg.label_delay_ms)
    a = e.transact(users[300:], terms[300:], times[300:], amounts[300:], np.arange(300, n))
    b = clone.transact(users[300:], terms[300:], times[300:], amounts[300:], np.arange(300, n))
    np.testing.assert_array_equal(a, b)
