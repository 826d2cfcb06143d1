"""The decision record: every decision (LEGIT included) journaled before its answer and
written off the answer path to Parquet partitioned by day; read back by time range and by
id, expired by retention, never lost to storage that refuses writes or a replica that dies."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from actors.client import recorder as recorder_module
from actors.client.local import LocalShardClient
from actors.client.recorder import ORPHAN_AFTER_MS, DecisionRecorder
from actors.store.backends import MemoryStore
from actors.store.decisions import DAY_MS, DecisionRecordConfig, DecisionStore
from cli.main import app
from deployments.scoring.desk_service import DeskService
from deployments.scoring.pipeline import ScoringPipeline
from policy.decision import Thresholds
from tests.code.test_deadline import Stalled, _soon
from tests.code.test_pipeline import FakeModel, tx

CARD = "4111111111111111"


def _recorder(root: Path, journal: MemoryStore | None = None, **config: Any) -> DecisionRecorder:
    files = DecisionStore.at(str(root))
    return DecisionRecorder(files, DecisionRecordConfig(**config), journal or MemoryStore())


def _pipeline(recorder: DecisionRecorder, shards: Any = None, **kw: Any) -> ScoringPipeline:
    return ScoringPipeline(shards or LocalShardClient(2, 1), FakeModel(), Thresholds(**kw),
                           recorder=recorder)  # fmt: skip


def test_every_decision_is_recorded_with_what_decided_it(tmp_path: Path) -> None:
    journal = MemoryStore()
    recorder = _recorder(tmp_path / "record", journal)
    p = _pipeline(recorder, review=0.3, block=0.8)
    amounts = [50.0, 400.0, 900.0, 20.0]  # FakeModel: score = amount / 1000
    txs = [tx(i, user=f"u{i % 2}", amount=a) for i, a in enumerate(amounts)]
    txs.append(tx(9, user=CARD, amount=30.0).model_copy(update={"transaction_id": CARD}))

    async def go() -> list[Any]:
        answers = await p.score(txs)
        # Answered: durable in the journal (one append), not yet in a file.
        assert len(journal.load(recorder.name).log) == 1 and recorder.held == 5
        assert not list((tmp_path / "record").glob("*"))
        assert await recorder.flush() == 5
        assert journal.load(recorder.name).log == [] and recorder.held == 0
        return answers

    answers = asyncio.run(go())
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
        assert row["replica"] == recorder.name and row["duplicate"] is False
    assert [got[f"tx{i}"]["decision"] for i in range(4)] == ["LEGIT", "REVIEW", "BLOCK", "LEGIT"]
    assert json.loads(got["tx2"]["reasons"])[0]["feature"] == "TX_AMOUNT"  # flagged: reasons
    assert got["tx0"]["reasons"] is None
    # No card number anywhere in the files: ids redacted, cards as keyed digests.
    raw = b"".join(f.read_bytes() for f in (tmp_path / "record").rglob("*.parquet"))
    assert CARD.encode() not in raw and CARD not in got


def test_a_degraded_answer_is_recorded_as_degraded(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path)
    p = _pipeline(recorder, Stalled("card"))

    async def go() -> None:
        await p.score([tx(1)], False, _soon())
        p.shards.open.set()  # type: ignore[attr-defined]
        await recorder.flush()

    asyncio.run(go())
    (row,) = DecisionStore.at(str(tmp_path)).read().to_pylist()
    assert row["degraded_reason"] == "card_state_late"


def test_partitions_by_day_range_reads_and_retention(tmp_path: Path) -> None:
    store = DecisionStore.at(str(tmp_path))
    recorder = _recorder(tmp_path)
    p = _pipeline(recorder)
    now = int(time.time() * 1000)

    async def go() -> None:
        await p.score([tx(i) for i in range(6)])
        # Those three batches decided 3 days ago (the decided time is the replica's clock).
        recorder._held = [(s, replace(e, at_ms=now - 3 * DAY_MS)) for s, e in recorder._held]
        await p.score([tx(i) for i in range(6, 9)])
        await recorder.flush()

    asyncio.run(go())
    days = store.days()
    assert len(days) == 2 and days[0] < days[1]
    assert store.read().num_rows == 9
    assert store.read(since_ms=now - DAY_MS).num_rows == 3
    assert store.read(until_ms=now - DAY_MS).num_rows == 6
    assert store.find("tx7")["decision"] == "LEGIT"  # type: ignore[index]
    assert store.find("nope") is None
    assert store.expire(retain_days=2) == [days[0]]  # the old day goes, whole
    assert store.read().num_rows == 3 and store.find("tx1") is None


def test_storage_that_refuses_writes_loses_nothing(tmp_path: Path) -> None:
    """Rows stay journaled while the record's storage refuses writes; past the memory
    bound they are held in the journal only, and read back once the storage is back."""
    blocker = tmp_path / "record"
    blocker.write_text("a file where the record's folder should be")  # every write fails
    recorder = _recorder(blocker, max_buffered_rows=1000)
    p = _pipeline(recorder)

    async def go() -> None:
        await p.score([tx(i) for i in range(600)])
        assert await recorder.flush() == 0 and recorder.failed_flushes == 1
        assert recorder.held == 600 and not recorder.spilled
        await p.score([tx(i) for i in range(600, 1200)])
        assert recorder.spilled and recorder.held == 0  # memory let go; the journal did not
        await p.score([tx(i) for i in range(1200, 1300)])
        assert await recorder.flush() == 0 and recorder.spilled
        blocker.unlink()  # the storage is back
        await p.score([tx(i) for i in range(1300, 1310)])
        assert await recorder.flush() == 1310 and not recorder.spilled

    asyncio.run(go())
    ids = DecisionStore.at(str(blocker)).read().column("transaction_id").to_pylist()
    assert sorted(ids) == sorted(f"tx{i}" for i in range(1310))  # each once


def test_a_replica_gone_between_write_and_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica wrote its file and died before its checkpoint, after more answers: the
    replica that adopts its journal writes every row, and readers see each once."""
    journal = MemoryStore()
    dead, alive = _recorder(tmp_path, journal), _recorder(tmp_path, journal)
    p = _pipeline(dead)
    lost_checkpoint = MemoryStore.checkpoint

    async def go() -> None:
        await p.score([tx(i) for i in range(5)])
        monkeypatch.setattr(MemoryStore, "checkpoint", lambda *a: None)  # dies before it
        assert await dead.flush() == 5
        monkeypatch.setattr(MemoryStore, "checkpoint", lost_checkpoint)
        await p.score([tx(i) for i in range(5, 8)])  # answered, never flushed: then it died
        assert await alive.adopt() == 0  # too recent: its replica may still write it
        later = time.time() + ORPHAN_AFTER_MS / 1000 + 1
        monkeypatch.setattr(recorder_module.time, "time", lambda: later)
        assert await alive.adopt() == 2 and journal.load(dead.name).log == []
        assert await alive.adopt() == 0  # once

    asyncio.run(go())
    ids = DecisionStore.at(str(tmp_path)).read().column("transaction_id").to_pylist()
    assert sorted(ids) == sorted(f"tx{i}" for i in range(8))
    assert len(list(tmp_path.rglob("*.parquet"))) == 2  # the first file, then its superset


def test_a_stopping_replica_writes_what_it_holds(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path)
    asyncio.run(_pipeline(recorder).score([tx(i) for i in range(4)]))
    recorder.close()
    assert DecisionStore.at(str(tmp_path)).read().num_rows == 4


class _Desk:
    """The desk's view has moved on: it holds no decision, only the label."""

    async def transaction(self, tx_id: str) -> None:
        return None

    async def label_of(self, tx_id: str) -> dict[str, Any]:
        return {"is_fraud": True, "source": "chargeback", "labelled_ms": 1}


def test_a_chargeback_after_the_desk_moved_on_finds_its_decision(tmp_path: Path) -> None:
    store = DecisionStore.at(str(tmp_path))
    recorder = _recorder(tmp_path)
    p = _pipeline(recorder)
    asyncio.run(p.score([tx(1, amount=950.0)]))
    recorder.close()
    found = asyncio.run(DeskService(_Desk(), p, store).transaction("tx1"))  # type: ignore[arg-type]
    assert found is not None
    assert (found["decision"], found["source"]) == ("BLOCK", "decision_record")
    assert found["label"]["source"] == "chargeback"
    assert asyncio.run(DeskService(_Desk(), p, store).transaction("tx2")) is None  # type: ignore[arg-type]


def _said(output: str) -> str:
    return " ".join(output.split())  # the console wraps long lines


def test_fraud_decisions_export(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path / "record")
    asyncio.run(_pipeline(recorder).score([tx(i, amount=100.0 * i + 10) for i in range(10)]))
    recorder.close()
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
