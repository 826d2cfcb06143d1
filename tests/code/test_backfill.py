"""`fraud backfill`'s plan and its effect: every row and label sent once, each label before
the transactions at or after its time; history applied through the pipeline (deciding
nothing) leaves state that scores the next transactions as offline replay of it all."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from actors.client.local import LocalShardClient
from cli.backfill import BackfillError, _labels, plan, resume_from
from deployments.http.schemas import LabelIn, TransactionIn
from deployments.scoring.pipeline import ScoringPipeline
from features.offline import feedback_from_labels, offline_features
from features.spec import FEATURE_NAMES
from features.transactions import normalise, sort_by_event_time
from policy.decision import Thresholds
from simulator.config import SimulationConfig
from simulator.generate import generate_days
from simulator.replay import tx_bodies
from tests.code.test_pipeline import FakeModel


@pytest.mark.parametrize("batch", [1, 7, 500])
def test_the_plan_sends_each_row_and_label_once_in_event_order(batch: int) -> None:
    rng = np.random.default_rng(batch)
    times = np.sort(rng.integers(0, 10_000, 400))
    labels = np.sort(np.concatenate([rng.choice(times, 30), rng.integers(0, 12_000, 10)]))
    steps = list(plan(times, labels, batch))
    rows = np.concatenate([np.arange(*s.rows) for s in steps])
    sent = np.concatenate([np.arange(*s.labels) for s in steps])
    np.testing.assert_array_equal(rows, np.arange(len(times)))
    np.testing.assert_array_equal(sent, np.arange(len(labels)))
    for s in steps:
        assert s.rows[1] - s.rows[0] <= batch
        if s.rows[1] > s.rows[0]:
            first, last = times[s.rows[0]], times[s.rows[1] - 1]
            # every label up to the first transaction's time went before (ties: label first)
            assert (labels[: s.labels[1]] <= first).all()
            assert (labels[s.labels[1] :] > first).all()
            assert (labels[s.labels[1] :] > last).all()  # none falls inside the request


def test_progress_of_another_history_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"source": "a.parquet", "rows_total": 10, "rows": 4,
                                "labels": 0, "applied": 4, "duplicates": 0, "conflicts": 0,
                                "labels_not_found": 0}))  # fmt: skip
    assert resume_from(path, "a.parquet", 10).rows == 4
    with pytest.raises(BackfillError, match="another history"):
        resume_from(path, "b.parquet", 10)
    assert resume_from(tmp_path / "none.json", "a.parquet", 10).rows == 0


def _stream() -> pd.DataFrame:
    cfg = SimulationConfig(
        n_customers=120, n_terminals=200, n_days=20, seed=9, compromised_terminals_per_day=1
    )
    df = normalise(pd.concat(list(generate_days(cfg)), ignore_index=True))
    return sort_by_event_time(df).reset_index(drop=True)


def test_state_backfilled_through_the_pipeline_scores_as_offline_replay() -> None:
    df = _stream()
    cut = int(np.searchsorted(df["timestamp"], df["timestamp"].min() + pd.Timedelta(days=15)))
    history, later = df.iloc[:cut], df.iloc[cut : cut + 400]
    assert history["is_fraud"].sum() > 10
    p = ScoringPipeline(LocalShardClient(2, 1), FakeModel(), Thresholds())
    labels = _labels(history, 7.0)
    times = history["timestamp"].astype("datetime64[ms]").to_numpy().astype(np.int64)
    label_ms = labels["timestamp"].astype("datetime64[ms]").to_numpy().astype(np.int64)
    bodies = tx_bodies(history)
    recorded: list[object] = []

    class Sink:  # where decided batches go (the desk's outbox): a backfill sends none
        async def record(self, batch: object, wait: bool) -> None:
            recorded.append(batch)

    p.sink = Sink()  # type: ignore[assignment]

    async def go() -> list[dict[str, float]]:
        applied = duplicates = 0
        for step in plan(times, label_ms, 64):
            part = labels.iloc[step.labels[0] : step.labels[1]]
            if len(part):
                await p.feedback([
                    LabelIn(transaction_id=str(t), terminal_id=str(k), is_fraud=bool(f))
                    for t, k, f in part[["transaction_id", "terminal_id", "is_fraud"]].itertuples(
                        index=False
                    )
                ])  # fmt: skip
            txs = [TransactionIn.model_validate(b) for b in bodies[step.rows[0] : step.rows[1]]]
            if txs:
                done = await p.backfill(txs)
                applied, duplicates = applied + done.applied, duplicates + done.duplicates
                tail = txs[-3:]  # a resumed run sends its last request again
                again = await p.backfill(tail)
                assert (again.applied, again.duplicates, again.conflicts) == (0, len(tail), [])
        assert (applied, duplicates) == (len(history), 0)
        assert not recorded  # nothing decided
        txs = [TransactionIn.model_validate(b) for b in tx_bodies(later)]
        return [o.features for o in await p.score(txs, True)]  # type: ignore[misc]

    online = pd.DataFrame(asyncio.run(go()))
    whole = pd.concat([history, later], ignore_index=True)
    offline = offline_features(whole, feedback=feedback_from_labels(whole, 7 * 86_400_000))
    want = offline.set_index("transaction_id").loc[later["transaction_id"], list(FEATURE_NAMES)]
    np.testing.assert_allclose(online[list(FEATURE_NAMES)].to_numpy(), want.to_numpy(), atol=1e-9)
    assert (want["TERMINAL_ID_RISK_30DAY_WINDOW"] > 0).any()  # history's labels count
    assert (want["CUSTOMER_ID_NB_TX_30DAY_WINDOW"] > 1).mean() > 0.5  # history's cards
