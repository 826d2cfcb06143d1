"""Flagged decisions are durable in the replica's outbox before the answer, and reach the desk
once however often the desk is away or a replica dies (the desk and shards in process)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors.actor.decision_log import DecidedBatch
from actors.client import outbox as desk_outbox
from actors.client.desk import DeskClient, PendingDecisions
from actors.client.local import LocalShardClient
from actors.client.outbox import DeskOutbox
from actors.store.backends import MemoryStore, SqliteStore
from actors.store.records import decode, encode
from deployments.scoring.pipeline import ScoringPipeline
from policy.decision import Thresholds
from tests.code.test_checkpoints import redis_store
from tests.code.test_pipeline import FakeModel, tx


class Flaky:
    """A `DeskCall` onto the in-process desk that fails while `away` is set."""

    def __init__(self, client: LocalShardClient) -> None:
        self.client, self.away = client, False

    async def __call__(self, method: Any, *args: Any) -> Any:
        if self.away:
            raise ConnectionError("desk restarting")
        return method(self.client.desk_state, *args)


def make(store: MemoryStore) -> tuple[LocalShardClient, Flaky, DeskOutbox, ScoringPipeline]:
    client = LocalShardClient(2, 2, store=store)
    call = Flaky(client)
    outbox = DeskOutbox(store, DeskClient(call), PendingDecisions())  # type: ignore[arg-type]
    pipeline = ScoringPipeline(client, FakeModel(), Thresholds(review=0.5, block=0.9), sink=outbox)
    return client, call, outbox, pipeline


def queued(client: LocalShardClient) -> list[str]:
    page = client.desk_state.review_page("open", 50, 0, 0.0, None)
    return sorted(i["transaction_id"] for i in page["items"])


def test_a_flagged_answer_does_not_wait_for_the_desk_and_nothing_is_lost() -> None:
    store = MemoryStore()
    client, call, outbox, p = make(store)

    async def go() -> None:
        call.away = True  # the desk actor is dead
        out = await p.score([tx(1, amount=600.0), tx(2, "u2", amount=950.0), tx(3, "u3")])
        assert [o.decision for o in out] == ["REVIEW", "BLOCK", "LEGIT"]  # answered anyway
        assert outbox.unsent == 1 and len(store.load(outbox.name).log) == 1  # durable first
        with pytest.raises(ConnectionError):
            await outbox.deliver()
        assert outbox.unsent == 1 and queued(client) == []
        call.away = False  # the desk is back
        assert await outbox.deliver() == 1
        assert queued(client) == ["tx1"]  # the REVIEW; the BLOCK is held as decided
        assert client.desk_state.transaction("tx2")["decision"] == "BLOCK"
        assert store.load(outbox.name).log == []  # delivered: the outbox dropped it
        assert await outbox.deliver() == 0

    asyncio.run(go())


def test_an_outbox_of_a_replica_that_died_is_delivered_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = MemoryStore()
    client, call, dead, p = make(store)
    asyncio.run(p.score([tx(1, amount=600.0)]))  # answered, then the replica died
    assert dead.unsent == 1
    other = DeskOutbox(store, DeskClient(call), PendingDecisions())  # type: ignore[arg-type]

    async def adopt() -> int:
        return await other.adopt(await other.orphans())

    assert asyncio.run(adopt()) == 0  # written just now: its replica may be delivering it
    monkeypatch.setattr(desk_outbox, "ORPHAN_AFTER_MS", -1)
    assert asyncio.run(adopt()) == 1 and queued(client) == ["tx1"]
    assert asyncio.run(adopt()) == 0  # checkpointed over: not delivered again
    # Had it been delivered before the replica died too, the desk holds it once.
    asyncio.run(dead.deliver())
    assert queued(client) == ["tx1"] and client.desk_state.duplicates == 1


def test_a_decided_batch_survives_the_store_as_it_was() -> None:
    batch = DecidedBatch(
        ids=["a", "b"], time_ms=np.array([1, 2]), amount=np.array([1.5, 2.5]),
        tier=np.array([0, 2], np.int8), score=np.array([0.1, 0.95]), version="m1",
        policy_version=3, user=["u", "v"], terminal=["t", "t"],
        terminal_key=np.array([7, 7]), tx_key=np.array([11, 12]),
        duplicate=np.array([False, False]),
        reasons={1: [{"feature": "TX_AMOUNT", "value": 2.5, "contribution": 0.4}]},
        rules={1: ["big"]},
    )  # fmt: skip
    back = DecidedBatch.from_record(decode(encode(batch.to_record())))
    for name in ("ids", "version", "policy_version", "user", "terminal", "reasons", "rules"):
        assert getattr(back, name) == getattr(batch, name)
    for name in ("time_ms", "amount", "tier", "score", "terminal_key", "tx_key", "duplicate"):
        got, want = getattr(back, name), getattr(batch, name)
        assert np.array_equal(got, want) and got.dtype == want.dtype


def test_every_store_lists_the_outboxes_it_holds(tmp_path: Path, redis_url: str) -> None:
    """What `adopt` finds them by, on each backend (a checkpoint's own file is not a name)."""
    redis = redis_store(redis_url)
    for store in (MemoryStore(), SqliteStore(tmp_path), redis):
        for name in ("outbox-aa", "outbox-bb", "user-0-of-1"):
            store.append(name, 1, encode({"at": 0}))
        store.checkpoint("outbox-aa", 1, encode({}), True)
        try:
            names = store.names("outbox-")  # one checkpointed whole may be left out
            assert "outbox-bb" in names and set(names) <= {"outbox-aa", "outbox-bb"}, names
        finally:
            for name in ("outbox-aa", "outbox-bb", "user-0-of-1"):
                store.delete(name)


def test_a_store_that_refuses_the_outbox_gives_503_and_the_retry_is_answered() -> None:
    """A flagged answer is never given before its decision is durable: a store that refuses
    the outbox's write is a 503 with Retry-After (never a 500), and the client's retry of the
    same request is answered as the first, its transaction applied once."""
    from actors.errors import Unavailable
    from actors.store.backends import StoreUnavailable

    class Refusing(MemoryStore):
        refuse = True

        def append(self, shard: str, seq: int, record: bytes, epoch: int | None = None) -> None:
            if self.refuse and shard.startswith("outbox-"):
                raise StoreUnavailable("redis: TimeoutError")
            super().append(shard, seq, record, epoch)

    store = Refusing()
    client, _, outbox, p = make(store)

    async def go() -> None:
        with pytest.raises(Unavailable) as refused:
            await p.score([tx(7, amount=950.0)])
        assert refused.value.status == 503 and refused.value.retry_after_s
        store.refuse = False
        again = await p.score([tx(7, amount=950.0)])
        assert again[0].decision == "BLOCK" and outbox.unsent == 1
        assert sum(s.transactions for s in client.users) == 1

    asyncio.run(go())
