"""The card and terminal rings' storage: growth, reuse, compaction, time rebasing, snapshots.

Features must not depend on where a ring lives in the arena, so each test compares against
a run where layout events (growth, compaction, rebase) happen elsewhere or not at all.
"""

from __future__ import annotations

import numpy as np
import pytest

from features.config import EngineConfig
from features.engine import FeatureEngine
from features.kernels import STEP
from features.spec import FEATURE_NAMES
from features.state import SLACK_DIVISOR, UserStore

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_530_000_000_000
NB_30D = FEATURE_NAMES.index("CUSTOMER_ID_NB_TX_30DAY_WINDOW")


def stream(
    n: int, users: int, days: int, seed: int
) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        [f"u{i}" for i in rng.integers(0, users, n)],
        [f"t{i}" for i in rng.integers(0, 40, n)],
        T0 + np.sort(rng.integers(0, days * DAY, n)),
        np.round(rng.uniform(1, 300, n), 2),
    )


def test_arena_growth_in_mid_batch_equals_one_at_a_time() -> None:
    """Thousands of new cards in one call outgrow the first arena several times."""
    users, terms, times, amounts = stream(6000, 2000, 40, seed=11)
    batch = FeatureEngine()
    a = batch.transact(users, terms, times, amounts, np.arange(6000))
    single = FeatureEngine()
    b = np.array(
        [
            single.transact([users[i]], [terms[i]], times[i : i + 1], amounts[i : i + 1], [i])[0]
            for i in range(6000)
        ]
    )
    np.testing.assert_array_equal(a, b)
    assert batch.users.arena_slots > 2048  # it did grow


def test_rings_fit_their_events_and_compaction_keeps_features() -> None:
    users, terms, times, amounts = stream(20_000, 300, 60, seed=12)
    e = FeatureEngine()
    e.transact(users[:15_000], terms[:15_000], times[:15_000], amounts[:15_000], np.arange(15_000))
    usage = e.users.arena_usage()
    # A ring is at most one growth step larger than the most events it has had to hold.
    assert usage["ring_slots"] <= usage["events_kept"] + 300 * (STEP + 12)
    # Freed blocks never pile up: compaction runs once they reach a share of the rings when
    # the arena is full (so at most that share plus the spare room since the last time).
    slack = 4 * e.config.user_capacity
    assert usage["free_slots"] <= 2 * (usage["ring_slots"] // SLACK_DIVISOR + slack)
    twin = FeatureEngine()
    twin.transact(
        users[:15_000], terms[:15_000], times[:15_000], amounts[:15_000], np.arange(15_000)
    )
    twin.users.compact()
    twin.terminals.compact()
    assert twin.users.arena_usage()["free_slots"] == 0
    rest = (
        users[15_000:],
        terms[15_000:],
        times[15_000:],
        amounts[15_000:],
        np.arange(15_000, 20_000),
    )
    np.testing.assert_array_equal(e.transact(*rest), twin.transact(*rest))


def reference_windows(times: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """nb and avg over 1/7/30 days for one card's in-order transactions, by brute force."""
    out = []
    for i, t in enumerate(times):
        row = []
        for days in (1, 7, 30):
            m = (times[: i + 1] > t - days * DAY) & (times[: i + 1] <= t)
            row += [m.sum(), amounts[: i + 1][m].mean()]
        out.append(row)
    return np.array(out)


def test_a_card_active_for_months_rebases_its_times_exactly() -> None:
    """32-bit time offsets span 49.7 days, so half a year of activity rebases many times."""
    rng = np.random.default_rng(4)
    times = T0 + np.cumsum(rng.integers(HOUR, 2 * DAY, 400))
    assert times[-1] - times[0] > 150 * DAY
    amounts = np.round(rng.uniform(1, 500, 400), 2)
    e = FeatureEngine()
    got = e.transact(["card"] * 400, ["T"] * 400, times, amounts, np.arange(400))
    cols = [3, 4, 5, 6, 7, 8]  # nb/avg 1, 7, 30 days
    np.testing.assert_allclose(got[:, cols], reference_windows(times, amounts), rtol=1e-12)
    assert e.users.overflow_total == 0


def test_late_transactions_count_until_they_are_beyond_any_window() -> None:
    e = FeatureEngine()
    for d in range(40):
        e.transact(["c"], ["T"], np.array([T0 + d * DAY]), np.array([10.0]), [d])
    # 20 days late: kept, so a later transaction's 30-day window counts it.
    e.transact(["c"], ["T"], np.array([T0 + 19 * DAY + 1]), np.array([10.0]), [100])
    after = e.transact(["c"], ["T"], np.array([T0 + 40 * DAY]), np.array([10.0]), [101])
    assert after[0, NB_30D] == 29 + 1 + 1  # days 11..39, the late one, itself
    assert e.users.overflow_total == 0
    # 60 days late: scored, not kept, and counted as not kept.
    late = e.transact(["c"], ["T"], np.array([T0 - 20 * DAY]), np.array([10.0]), [102])
    assert late[0, NB_30D] == 1
    assert e.users.overflow_total == 1


def test_empty_stores_snapshot_and_restore() -> None:
    e = FeatureEngine()
    c = e.config
    users = UserStore.from_form(e.users.capture(full=True), c.user_capacity)
    terminals = type(e.terminals).from_form(
        e.terminals.capture(full=True), c.terminal_capacity, c.label_delay_ms
    )
    assert len(users) == 0 and len(terminals) == 0
    restored = FeatureEngine()
    restored.users, restored.terminals = users, terminals
    first = (["c"], ["T"], np.array([T0]), np.array([5.0]), [1])
    np.testing.assert_array_equal(restored.transact(*first), e.transact(*first))


def test_amounts_beyond_int32_cents_are_refused() -> None:
    with pytest.raises(ValueError, match="amount must be within"):
        FeatureEngine().transact(["c"], ["T"], np.array([T0]), np.array([3e7]), [0])


def test_capacity_below_two_events_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        UserStore(1)
    assert EngineConfig().user_capacity >= 2
