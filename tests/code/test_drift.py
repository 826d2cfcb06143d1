"""The drift monitor: PSI of each column's window against its model's reference, an alert
past the bound, a new reference for a new model, and a window that slides."""

from __future__ import annotations

import numpy as np

from policy.drift import DriftMonitor, DriftSettings, psi

SETTINGS = DriftSettings(reference_transactions=2_000, window_transactions=1_000, min_window=500)


def _rows(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    x = np.column_stack([rng.normal(shift, 1.0, n), rng.exponential(1.0, n), np.full(n, np.nan)])
    x[rng.random(n) < 0.3, 2] = 1.0  # a feature present on 30 % of rows
    return x


def test_the_same_distribution_stays_ok_and_a_shift_alerts() -> None:
    rng = np.random.default_rng(1)
    m = DriftMonitor(["a", "b", "c"], SETTINGS)
    for _ in range(4):
        m.add(_rows(rng, 1_000), rng.random(1_000), "v1")
        m.update()
    same = m.report()
    assert same["state"] == "ok" and same["reference"] == 2_000 and same["window"] == 1_000
    assert max(same["psi"].values()) < 0.05
    for _ in range(3):  # column a moves by one standard deviation; the window slides
        m.add(_rows(rng, 500, shift=1.0), rng.random(500), "v1")
        m.update()
    moved = m.report()
    assert moved["state"] == "alert" and moved["over"] == ["a"]
    assert moved["psi"]["a"] > 0.5 and moved["psi"]["b"] < 0.05


def test_missing_values_are_a_bin_of_their_own() -> None:
    rng = np.random.default_rng(2)
    m = DriftMonitor(["a", "b", "c"], SETTINGS)
    m.add(_rows(rng, 3_000), rng.random(3_000), "v1")
    m.update()
    assert m.report()["psi"]["c"] < 0.05
    gone = _rows(rng, 1_000)
    gone[:, 2] = np.nan  # the gateway stopped sending the field
    m.add(gone, rng.random(1_000), "v1")
    m.update()
    assert "c" in m.report()["over"]


def test_a_new_model_starts_a_new_reference_and_warms_up_first() -> None:
    rng = np.random.default_rng(3)
    m = DriftMonitor(["a", "b", "c"], SETTINGS)
    m.add(_rows(rng, 1_500), rng.random(1_500), "v1")
    m.update()
    assert m.report()["state"] == "warming" and m.report()["psi"] is None
    m.add(_rows(rng, 3_000), rng.random(3_000), "v1")
    m.update()
    assert m.report()["state"] == "ok"
    m.add(_rows(rng, 100), rng.random(100), "v2")
    m.update()
    fresh = m.report()
    assert fresh["version"] == "v2" and fresh["state"] == "warming" and fresh["reference"] == 100


def test_the_window_counts_equal_a_recount_of_its_rows() -> None:
    rng = np.random.default_rng(4)
    m = DriftMonitor(["a", "b", "c"], SETTINGS)
    sent = []
    for n in (2_500, 300, 900, 1, 1_700):
        rows = _rows(rng, n)
        scores = rng.random(n)
        sent.append(np.column_stack([rows, scores]))
        m.add(rows, scores, "v1")
        m.update()
    window = np.concatenate(sent)[2_000:][-1_000:]  # after the reference, the newest 1,000
    recount = np.stack([np.bincount(c, minlength=11) for c in m._bins(window).T])
    np.testing.assert_array_equal(m.current, recount)
    assert psi(m.reference, m.reference).max() == 0.0


def test_the_desk_sums_up_the_replicas_drift() -> None:
    from actors.actor.live_stats import LiveStats

    live = LiveStats()
    assert live.drift_summary()["state"] == "warming"
    live.drifted("r1", {"state": "ok", "psi": {"a": 0.01, "score": 0.05}, "over": []})
    live.drifted("r2", {"state": "warming", "psi": None, "over": []})
    assert live.drift_summary()["state"] == "ok"
    live.drifted("r2", {"state": "alert", "psi": {"a": 0.4, "score": 0.02}, "over": ["a"]})
    summary = live.snapshot(0.0)["drift"]
    assert summary["state"] == "alert" and summary["over"] == ["a"]
    assert summary["psi"] == {"a": 0.4, "score": 0.05}  # each column's largest
    assert set(summary["replicas"]) == {"r1", "r2"}


def test_the_pipeline_feeds_first_answers_only() -> None:
    """Retries (answered as before) are not counted again; the monitor's reference is the
    model's first answers."""
    import asyncio

    from actors.client.local import LocalShardClient
    from deployments.http.schemas import TransactionIn
    from deployments.scoring.pipeline import ScoringPipeline
    from features.spec import FEATURE_NAMES
    from policy.decision import Thresholds
    from tests.code.test_pipeline import FakeModel

    monitor = DriftMonitor(
        FEATURE_NAMES,
        DriftSettings(reference_transactions=100, window_transactions=100, min_window=50),
    )
    p = ScoringPipeline(LocalShardClient(1, 1), FakeModel(), Thresholds(), drift=monitor)
    txs = [
        TransactionIn.model_validate({
            "transaction_id": f"d{i}", "user_id": f"c{i % 7}", "terminal_id": f"k{i % 5}",
            "amount": 10.0 + i, "timestamp": 1_700_000_000 + 60 * i,
        })
        for i in range(180)
    ]  # fmt: skip

    async def go() -> None:
        for a in range(0, len(txs), 20):
            await p.score(txs[a : a + 20])
            await p.score(txs[a : a + 3])  # retries

    asyncio.run(go())
    monitor.update()
    report = monitor.report()
    assert report["reference"] == 100 and report["window"] == 80  # 180 first answers
    assert report["state"] in ("ok", "alert") and set(report["psi"]) == {*FEATURE_NAMES, "score"}
