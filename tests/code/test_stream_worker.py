"""A stream partition's batch without Ray or Redis: every input entry gets one result entry
with one answer per item, in order; invalid items are answered naming their fields."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from actors.local_shards import LocalShardClient
from deployments.scoring.pipeline import ScoringPipeline
from deployments.stream.contract import Entry, StreamConfig
from deployments.stream.worker import PartitionWorker
from policy.decision import Thresholds
from tests.code.test_pipeline import FakeModel


class Recorder:
    """The `StreamSource` methods `process` uses, keeping what it wrote."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []
        self.acked: list[str] = []

    async def write_results(self, partition: int, results: list[dict[str, Any]]) -> None:
        self.results += results

    async def ack(self, partition: int, ids: list[str]) -> None:
        self.acked += ids


def body(i: int, **change: object) -> dict[str, object]:
    tx = {
        "transaction_id": f"tx{i}", "user_id": f"u{i % 3}", "terminal_id": "t1",
        "amount": 10.0 + i, "timestamp": f"2018-06-01T10:{i:02d}:00",
    }  # fmt: skip
    return {**tx, **change}


def test_each_entry_is_answered_item_by_item_in_order() -> None:
    source = Recorder()
    pipeline = ScoringPipeline(LocalShardClient(2, 1), FakeModel(), Thresholds())
    worker = PartitionWorker(0, source, pipeline.score_items, pipeline.feedback, StreamConfig())
    label = {"transaction_id": "tx1", "terminal_id": "t1", "is_fraud": True}
    entries = [
        Entry("1-0", "txs", orjson.dumps([body(1), body(2), body(3)])),
        Entry("2-0", "txs", orjson.dumps([body(4), body(5, amount=-1), body(6), "x"])),
        Entry("3-0", "tx", orjson.dumps(body(7, transaction_id=8))),  # an integer id
        Entry("4-0", "txs", b"not json"),
        Entry("5-0", "labels", orjson.dumps([label, {"is_fraud": "yes"}])),
        Entry("6-0", "txs", orjson.dumps([body(1, amount=99.0), body(9)])),  # tx1 reused
    ]
    asyncio.run(worker.process(entries))

    assert source.acked == [e.id for e in entries]
    by_src = {r["src"]: orjson.loads(r["body"]) for r in source.results}
    assert [a["transaction_id"] for a in by_src["1-0"]] == ["tx1", "tx2", "tx3"]
    assert [a["decision"] for a in by_src["1-0"]] == ["LEGIT"] * 3
    mixed = by_src["2-0"]
    assert [a.get("transaction_id") for a in mixed] == ["tx4", "tx5", "tx6", ""]
    assert [a["decision"] for a in mixed] == ["LEGIT", "INVALID", "LEGIT", "INVALID"]
    assert mixed[1]["error"] == "invalid amount" and mixed[3]["error"] == "invalid body"
    assert mixed[0]["score"] == (10.0 + 4) / 1000  # the answer of its own transaction
    assert mixed[2]["score"] == (10.0 + 6) / 1000
    single = next(r for r in source.results if r["src"] == "3-0")
    assert single["transaction_id"] == "8" and single["decision"] == "LEGIT"
    assert by_src["4-0"] == [
        {"transaction_id": "", "decision": "INVALID", "error": "body is not JSON"}
    ]
    assert [a["error"] for a in by_src["5-0"]] == ["invalid is_fraud, terminal_id, transaction_id"]
    assert [a["decision"] for a in by_src["6-0"]] == ["CONFLICT", "LEGIT"]
    assert (worker.transactions, worker.labels, worker.invalid) == (8, 1, 4)
