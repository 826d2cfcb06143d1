"""Quiet cards and terminals give their events back once no later transaction can see them,
and no feature changes: the same stream scores the same with the sweep as without it."""

from __future__ import annotations

import numpy as np

from features.config import EngineConfig
from features.engine import FeatureEngine
from features.state import UserStore

DAY = 86_400_000
T0 = 1_530_000_000_000


def _stream(rng: np.random.Generator) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """120 days: 40 steady cards, and 40 that go quiet for 45 days half-way, then return;
    a few transactions arrive up to 5 days late (within the default lateness)."""
    users, times = [], []
    for day in range(120):
        for _ in range(60):
            quiet = 40 <= day < 85
            card = int(rng.integers(0, 40 if quiet else 80))
            users.append(f"c{card}")
            times.append(T0 + day * DAY + int(rng.integers(0, DAY)))
    t = np.sort(np.asarray(times, np.int64))
    late = rng.choice(len(t), 40, replace=False)
    t[late] -= rng.integers(0, 5 * DAY, 40)
    terminals = [f"t{int(x)}" for x in rng.integers(0, 60, len(t))]
    return users, terminals, t, rng.uniform(1, 200, len(t))


def test_the_sweep_changes_no_feature_and_frees_quiet_cards() -> None:
    users, terminals, times, amounts = _stream(np.random.default_rng(8))
    swept, kept = FeatureEngine(), FeatureEngine(EngineConfig(lateness_days=None))
    keys = np.arange(len(times))
    for a in range(0, len(times), 97):  # in requests, as a stream would arrive
        s = slice(a, a + 97)
        np.testing.assert_array_equal(
            swept.transact(users[s], terminals[s], times[s], amounts[s], keys[s]),
            kept.transact(users[s], terminals[s], times[s], amounts[s], keys[s]),
        )
        if a // 97 == 60 * 84 // 97:  # day 84: the quiet cards have been quiet 44 days
            quiet = swept.users.slots_for([f"c{i}" for i in range(40, 80)])
            assert (swept.users.scalars["length"][quiet] == 0).all()
            assert (kept.users.scalars["length"][quiet] > 0).all()
            held = swept.users.arena_usage()["events_kept"]
            assert held < kept.users.arena_usage()["events_kept"]
    assert swept.users.scalars["count_total"].sum() == len(times)  # totals stay


def test_a_quiet_card_costs_its_scalars_after_compaction() -> None:
    store = UserStore(192, lateness_ms=7 * DAY)
    ids = [f"c{i}" for i in range(1_000)]
    slots = store.slots_for(ids)
    rng = np.random.default_rng(1)
    for day in range(31):  # every card active for a month
        store.update(slots, T0 + day * DAY + rng.integers(0, DAY, 1_000),
                     rng.uniform(1, 99, 1_000), np.zeros(1_000, np.int32))  # fmt: skip
    busy = store.state_nbytes() / len(ids)
    active = slots[:10]
    for day in range(31, 31 + 40):  # then 990 of them go quiet for 40 days
        store.update(active, T0 + day * DAY + rng.integers(0, DAY, 10),
                     rng.uniform(1, 99, 10), np.zeros(10, np.int32))  # fmt: skip
    store.compact()
    assert (store.scalars["length"][slots[10:]] == 0).all()
    quiet = store.state_nbytes() / len(ids)
    per_row = sum(a.dtype.itemsize for a in store.scalars.values())
    assert quiet < per_row + 40 and quiet < busy / 5, (quiet, per_row, busy)
