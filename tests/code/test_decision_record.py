"""The decision record: every decision (LEGIT included) written off the answer path to
Parquet partitioned by day, read back by time range and by id, expired by retention, and
never lost to a filesystem that refuses a write while the buffer has room."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from typer.testing import CliRunner

from actors.client.local import LocalShardClient
from actors.client.recorder import DecisionRecorder
from actors.store.decisions import DAY_MS, DecisionRecordConfig, DecisionStore
from cli.main import app
from deployments.scoring.desk_service import DeskService
from deployments.scoring.pipeline import ScoringPipeline
from policy.decision import Thresholds
from tests.code.test_deadline import Stalled, _soon
from tests.code.test_pipeline import FakeModel, tx

CARD = "4111111111111111"


def _recorder(root: Path, **config: Any) -> DecisionRecorder:
    return DecisionRecorder(DecisionStore.at(str(root)), DecisionRecordConfig(**config))


def test_every_decision_is_recorded_with_what_decided_it(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path / "record")
    thresholds = Thresholds(review=0.3, block=0.8)
    p = ScoringPipeline(LocalShardClient(2, 1), FakeModel(), thresholds, recorder=recorder)
    amounts = [50.0, 400.0, 900.0, 20.0]  # FakeModel: score = amount / 1000
    txs = [tx(i, user=f"u{i % 2}", amount=a) for i, a in enumerate(amounts)]
    txs.append(tx(9, user=CARD, amount=30.0).model_copy(update={"transaction_id": CARD}))
    answers = asyncio.run(p.score(txs))
    assert recorder.buffered == 5 and not list((tmp_path / "record").glob("*"))  # off the path
    assert recorder.flush() == 5 and recorder.buffered == 0

    table = DecisionStore.at(str(tmp_path / "record")).read()
    got = {r["transaction_id"]: r for r in table.to_pylist()}
    assert len(got) == 5
    for t, a in zip(txs[:4], answers[:4], strict=True):
        row = got[t.transaction_id]
        assert a is not None
        assert (row["decision"], row["score"]) == (a.decision, a.score)
        assert (row["review_threshold"], row["block_threshold"]) == (0.3, 0.8)
        assert row["model_version"] == "fake-1" and row["degraded_reason"] is None
        assert row["time_ms"] == 1527847200000 and row["amount"] == t.amount
    assert [got[f"tx{i}"]["decision"] for i in range(4)] == ["LEGIT", "REVIEW", "BLOCK", "LEGIT"]
    assert json.loads(got["tx2"]["reasons"])[0]["feature"] == "TX_AMOUNT"  # flagged: reasons
    assert got["tx0"]["reasons"] is None
    # No card number anywhere in the files: ids redacted, cards as keyed digests.
    raw = b"".join(f.read_bytes() for f in (tmp_path / "record").rglob("*.parquet"))
    assert CARD.encode() not in raw and b"u1" not in got["tx1"]["card"].encode()
    assert CARD not in got and len(got) == 5


def test_a_degraded_answer_is_recorded_as_degraded(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path)
    p = ScoringPipeline(Stalled("card"), FakeModel(), Thresholds(), recorder=recorder)

    async def go() -> None:
        await p.score([tx(1)], False, _soon())
        p.shards.open.set()  # type: ignore[attr-defined]

    asyncio.run(go())
    recorder.flush()
    (row,) = DecisionStore.at(str(tmp_path)).read().to_pylist()
    assert row["degraded_reason"] == "card_state_late"


def test_partitions_by_day_range_reads_and_retention(tmp_path: Path) -> None:
    store = DecisionStore.at(str(tmp_path))
    recorder = _recorder(tmp_path)
    p = ScoringPipeline(LocalShardClient(1, 1), FakeModel(), Thresholds(), recorder=recorder)
    asyncio.run(p.score([tx(i) for i in range(6)]))
    now = int(time.time() * 1000)
    # Three decisions made 3 days ago, three today (the decided time is the replica's clock).
    for i, (batch, _, review, block) in enumerate(recorder._rows):
        recorder._rows[i] = (batch, now - 3 * DAY_MS, review, block)
    asyncio.run(p.score([tx(i) for i in range(6, 9)]))
    recorder.flush()
    days = store.days()
    assert len(days) == 2 and days[0] < days[1]
    assert store.read().num_rows == 9
    assert store.read(since_ms=now - DAY_MS).num_rows == 3
    assert store.read(until_ms=now - DAY_MS).num_rows == 6
    assert store.find("tx7")["decision"] == "LEGIT"  # type: ignore[index]
    assert store.find("nope") is None
    assert store.expire(retain_days=2) == [days[0]]  # the old day goes, whole
    assert store.read().num_rows == 3 and store.find("tx1") is None


def test_a_refused_write_keeps_the_rows_until_the_buffer_is_full(tmp_path: Path) -> None:
    blocker = tmp_path / "record"
    blocker.write_text("a file where the record's folder should be")  # every write fails
    recorder = _recorder(blocker, max_buffered_rows=1000)
    p = ScoringPipeline(LocalShardClient(1, 1), FakeModel(), Thresholds(), recorder=recorder)
    asyncio.run(p.score([tx(i) for i in range(600)]))
    assert recorder.flush() == 0 and recorder.failed_flushes == 1 and recorder.buffered == 600
    asyncio.run(p.score([tx(i) for i in range(600, 1200)]))
    assert recorder.buffered == 600 and recorder.dropped_rows == 600  # the oldest batch went
    blocker.unlink()  # the filesystem is back
    assert recorder.flush() == 600
    ids = set(DecisionStore.at(str(blocker)).read().column("transaction_id").to_pylist())
    assert ids == {f"tx{i}" for i in range(600, 1200)}
    assert recorder.stats() == {"written": 600, "buffered": 0, "dropped": 600, "failed_flushes": 1}


class _Desk:
    """The desk's view has moved on: it holds no decision, only the label."""

    async def transaction(self, tx_id: str) -> None:
        return None

    async def label_of(self, tx_id: str) -> dict[str, Any]:
        return {"is_fraud": True, "source": "chargeback", "labelled_ms": 1}


def test_a_chargeback_after_the_desk_moved_on_finds_its_decision(tmp_path: Path) -> None:
    store = DecisionStore.at(str(tmp_path))
    recorder = DecisionRecorder(store, DecisionRecordConfig())
    p = ScoringPipeline(LocalShardClient(1, 1), FakeModel(), Thresholds(), recorder=recorder)
    asyncio.run(p.score([tx(1, amount=950.0)]))
    recorder.flush()
    found = asyncio.run(DeskService(_Desk(), p, store).transaction("tx1"))  # type: ignore[arg-type]
    assert found is not None
    assert (found["decision"], found["source"]) == ("BLOCK", "decision_record")
    assert found["label"]["source"] == "chargeback"
    assert asyncio.run(DeskService(_Desk(), p, store).transaction("tx2")) is None  # type: ignore[arg-type]


def _said(output: str) -> str:
    return " ".join(output.split())  # the console wraps long lines


def test_fraud_decisions_export(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path / "record")
    p = ScoringPipeline(LocalShardClient(1, 1), FakeModel(), Thresholds(), recorder=recorder)
    asyncio.run(p.score([tx(i, amount=100.0 * i + 10) for i in range(10)]))
    recorder.flush()
    runner = CliRunner()
    base = ["decisions", "export", "--path", str(tmp_path / "record")]
    for name in ("all.parquet", "all.csv", "all.jsonl"):
        result = runner.invoke(app, [*base, "--output", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert "10 decisions" in _said(result.output)
    assert pq.read_table(tmp_path / "all.parquet").num_rows == 10
    lines = (tmp_path / "all.jsonl").read_text().splitlines()
    assert [json.loads(line)["transaction_id"] for line in lines][:2] == ["tx0", "tx1"]
    assert len((tmp_path / "all.csv").read_text().splitlines()) == 11
    later = ["--since", "2999-01-01"]
    empty = runner.invoke(app, [*base, *later, "--output", str(tmp_path / "n.csv")])
    assert empty.exit_code == 0 and "0 decisions" in _said(empty.output)
    bad = runner.invoke(app, [*base, "--since", "yesterday", "--output", str(tmp_path / "x.csv")])
    assert bad.exit_code == 2 and "--since" in bad.output
    bad = runner.invoke(app, [*base, "--output", str(tmp_path / "x.txt")])
    assert bad.exit_code == 2 and "--output" in bad.output
