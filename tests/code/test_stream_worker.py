"""A stream partition's batch without Ray or Redis: every input entry gets one result entry
with one answer per item, in order; invalid items are answered naming their fields."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from actors.client.local import LocalShardClient
from deployments.scoring.pipeline import ScoringPipeline
from deployments.stream.contract import DeadLetter, Entry, StreamConfig
from deployments.stream.worker import BatchDecider, PartitionWorker
from policy.decision import Thresholds
from tests.code.test_pipeline import FakeModel


class Recorder:
    """The `StreamSource` methods `process` uses, keeping what it wrote."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []
        self.acked: list[str] = []
        self.dead: list[DeadLetter] = []

    async def write_results(self, partition: int, results: list[dict[str, Any]]) -> None:
        self.results += results

    async def ack(self, partition: int, ids: list[str]) -> None:
        self.acked += ids

    async def dead_letter(self, partition: int, letters: list[DeadLetter]) -> None:
        assert not set(d.entry.id for d in letters) & set(self.acked)  # recorded before ack
        self.dead += letters


def body(i: int, **change: object) -> dict[str, object]:
    tx = {
        "transaction_id": f"tx{i}", "user_id": f"u{i % 3}", "terminal_id": "t1",
        "amount": 10.0 + i, "timestamp": f"2018-06-01T10:{i:02d}:00",
    }  # fmt: skip
    return {**tx, **change}


def test_each_entry_is_answered_item_by_item_in_order() -> None:
    source = Recorder()
    pipeline = ScoringPipeline(LocalShardClient(2, 1), FakeModel(), Thresholds())
    worker = PartitionWorker(
        0, source, BatchDecider(pipeline.score_applied, pipeline.feedback, StreamConfig())
    )
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
    assert (worker.decider.transactions, worker.decider.labels, worker.decider.invalid) == (8, 1, 4)


def test_poison_entries_are_dead_lettered_and_the_partition_goes_on() -> None:
    """An entry with no kind, an unknown kind, a body that is not JSON or too large carries
    nothing to decide: it is answered INVALID, dead-lettered with the reason, acknowledged,
    and the good entries around it are decided."""
    source = Recorder()
    pipeline = ScoringPipeline(LocalShardClient(2, 1), FakeModel(), Thresholds())
    config = StreamConfig(max_entry_bytes=1_024)
    worker = PartitionWorker(
        0, source, BatchDecider(pipeline.score_applied, pipeline.feedback, config)
    )
    entries = [
        Entry("1-0", "tx", orjson.dumps(body(1))),
        Entry("2-0", "", orjson.dumps(body(2))),  # no kind field
        Entry("3-0", "tx", orjson.dumps(body(3))),
        Entry("4-0", "txz", orjson.dumps([body(4)])),
        Entry("5-0", "txs", b"{not json"),
        Entry("6-0", "txs", orjson.dumps([body(i, terminal_id="t" * 60) for i in range(20)])),
        Entry("7-0", "txs", orjson.dumps([body(8), body(9)])),
    ]
    asyncio.run(worker.process(entries))
    assert source.acked == [e.id for e in entries]
    reasons = {d.entry.id: d.reason for d in source.dead}
    assert reasons == {
        "2-0": "entry has no kind field",
        "4-0": "unknown kind 'txz'",
        "5-0": "body is not JSON",
        "6-0": "body over 1,024 bytes",
    }
    by_src = {r["src"]: orjson.loads(r["body"]) for r in source.results}
    for src in reasons:
        assert by_src[src] == [{"transaction_id": "", "decision": "INVALID", "error": reasons[src]}]
    decided = [a["transaction_id"] for s in ("1-0", "3-0", "7-0") for a in by_src[s]]
    assert decided == ["tx1", "tx3", "tx8", "tx9"]
    assert worker.dead_letters == 4 and worker.decider.transactions == 4


def test_the_redis_reader_turns_an_entry_without_kind_into_a_dead_letter(redis_url: str) -> None:
    """Read from a real Redis (the session's own): an entry missing `kind` is read, not
    raised on, so the reader does not stop at it forever; its dead letter keeps no body."""
    import uuid

    import redis

    from deployments.stream.redis import RedisStreams

    prefix = f"test-poison-{uuid.uuid4().hex[:8]}"
    config = StreamConfig(
        redis_url=redis_url, input_prefix=f"{prefix}:tx", results_prefix=f"{prefix}:out",
        dead_letter_prefix=f"{prefix}:dead", group="g",
    )  # fmt: skip
    r = redis.Redis.from_url(config.redis_url)
    try:
        r.xadd(f"{prefix}:tx:0", {"body": b'{"card": "4111111111111111"}'})  # no kind
        r.xadd(f"{prefix}:tx:0", {"kind": "tx", "body": orjson.dumps(body(1))})

        async def scenario() -> list[Entry]:
            source = RedisStreams(config, consumer="c1")
            try:
                got = await source.read(0, 10, 100, pending=False)
                await source.dead_letter(0, [DeadLetter(got[0], "entry has no kind field")])
                await source.ack(0, [e.id for e in got])
                return got
            finally:
                await source.close()

        got = asyncio.run(scenario())
        assert [e.kind for e in got] == ["", "tx"]
        ((_, fields),) = r.xrange(f"{prefix}:dead:0")
        assert fields[b"src"].decode() == got[0].id
        assert fields[b"reason"] == b"entry has no kind field"
        assert b"body" not in fields and b"4111" not in b"".join(fields.values())
        assert r.xpending(f"{prefix}:tx:0", "g")["pending"] == 0
    finally:
        r.delete(*r.keys(f"{prefix}:*"))
