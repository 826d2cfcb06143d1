"""Exactly-once effect per transaction: deduplication, conflicts, durable state, recovery.

No Ray here: the shard classes are plain Python; a "restart" is a new shard object on the
same store, which is what Ray does when it re-runs a dead actor's constructor.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import numpy as np
import pytest

from actors.actor.dedup import DedupIndex, Seen
from actors.client.local import LocalShardClient
from actors.errors import TransactionConflict
from actors.store.backends import MemoryStore, RedisStore, SqliteStore, StoreUnavailable
from actors.store.records import decode, encode
from deployments.http.schemas import LabelIn, TransactionIn
from deployments.scoring.pipeline import ScoringPipeline
from policy.decision import Thresholds
from tests.code.test_pipeline import FakeModel


def tx(
    i: int, user: str, amount: float = 10.0, minute: int = 0, terminal: str = "T"
) -> TransactionIn:
    return TransactionIn(
        transaction_id=f"tx{i}",
        user_id=user,
        terminal_id=terminal,
        amount=amount,
        timestamp=f"2018-06-01T10:{minute:02d}:00",
    )


def stream(n: int) -> list[TransactionIn]:
    rng = np.random.default_rng(0)
    return [
        tx(
            i,
            f"u{rng.integers(0, 40)}",
            float(rng.integers(1, 300)),
            i % 60,
            f"T{rng.integers(0, 9)}",
        )
        for i in range(n)
    ]


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def totals(client: LocalShardClient) -> tuple[int, int]:
    return (
        sum(s.transactions for s in client.users),
        sum(s.transactions for s in client.terminals),
    )


def test_retry_returns_the_first_answer_and_changes_nothing() -> None:
    client = LocalShardClient(2, 2)
    p = ScoringPipeline(client, FakeModel(), Thresholds())
    first = run(p.score([tx(1, "a", minute=1)], include_features=True))
    run(p.score([tx(2, "a", minute=2)]))
    again = run(p.score([tx(1, "a", minute=1)], include_features=True))
    assert again == first
    assert totals(client) == (2, 2)
    # Copies inside one request and a concurrent pair count once.
    out = run(p.score([tx(3, "b"), tx(3, "b"), tx(4, "b", minute=5)], include_features=True))
    assert out[0] == out[1] and totals(client) == (4, 4)

    async def pair() -> list[object]:
        return await asyncio.gather(p.score([tx(5, "c")]), p.score([tx(5, "c")]))

    a, b = run(pair())
    assert a == b and totals(client) == (5, 5)


def test_same_id_with_another_body_is_a_conflict_and_applies_nothing_of_it() -> None:
    client = LocalShardClient(2, 2)
    p = ScoringPipeline(client, FakeModel(), Thresholds())
    run(p.score([tx(1, "a", amount=10.0)]))
    with pytest.raises(TransactionConflict) as err:
        run(p.score([tx(1, "a", amount=99.0), tx(2, "b")]))
    assert err.value.transaction_ids == ["tx1"]
    assert totals(client) == (2, 2)  # tx2 applied once, the conflicting copy nowhere
    with pytest.raises(TransactionConflict):
        run(p.score([tx(7, "a", amount=1.0), tx(7, "a", amount=2.0)]))


def test_repeated_label_counts_once() -> None:
    p = ScoringPipeline(LocalShardClient(1, 1), FakeModel(), Thresholds())
    run(p.score([tx(1, "a"), tx(2, "b", minute=1)]))
    label = LabelIn(transaction_id="tx1", terminal_id="T", is_fraud=True)
    for _ in range(3):
        assert run(p.feedback([label, label])) == []
    later = TransactionIn(
        transaction_id="late",
        user_id="c",
        terminal_id="T",
        amount=5.0,
        timestamp="2018-06-08T12:00:00",
    )
    assert run(p.score([later], True))[0].features["TERMINAL_ID_RISK_7DAY_WINDOW"] == 0.5


def record(d: DedupIndex, key: str | int, body: int, time_ms: int) -> None:
    d.record_many(
        [key], np.array([body]), np.array([time_ms]), np.ones((1, d.n_features)), ["owner"]
    )


def seen(d: DedupIndex, key: str | int, body: int) -> Seen:
    return Seen(int(d.check_many([key], np.array([body]))[0][0]))


def test_dedup_window_is_bounded_by_event_time_and_count() -> None:
    d = DedupIndex(2, window_ms=3_600_000, max_entries=3)
    for i, t in enumerate([0, 1_000, 2_000]):
        record(d, f"k{i}", 1, t)
    record(d, "k3", 1, 3_000)  # recording evicts
    assert seen(d, "k0", 1) is Seen.NEW and len(d) == 3  # count bound
    record(d, "k4", 1, 3_700_000)
    assert [seen(d, k, 1) for k in ("k1", "k4")] == [Seen.NEW, Seen.DUPLICATE]  # time bound
    clone = DedupIndex(2, 3_600_000, 3)
    clone.load(decode(encode(d.capture(full=True))))
    assert seen(clone, "k4", 1) is Seen.DUPLICATE and seen(clone, "k4", 2) is Seen.CONFLICT


def test_entries_stored_by_an_engine_with_fewer_features_still_count_once() -> None:
    """A capture from before features were appended loads: its entries stay duplicates, the
    columns it lacks are unknown (NaN); a capture wider than the engine is refused."""
    old = DedupIndex(2, 3_600_000, 10)
    record(old, "k0", 1, 0)
    wide = DedupIndex(3, 3_600_000, 10)
    wide.load(decode(encode(old.capture(full=True))))
    status, feats = wide.check_many(["k0"], np.array([1]))
    assert Seen(int(status[0])) is Seen.DUPLICATE
    assert feats[0, :2].tolist() == [1.0, 1.0] and np.isnan(feats[0, 2])
    merged = wide.concat([old.capture(full=True), wide.capture(full=True)])
    assert merged["feats"].shape == (2, 3)
    with pytest.raises(ValueError, match="this engine computes 1 per entry"):
        DedupIndex(1, 3_600_000, 10).load(decode(encode(old.capture(full=True))))


def test_dedup_columns_match_a_plain_ordered_dict_through_growth_and_snapshots() -> None:
    """The columnar index against the rule it implements, on random batches: an id
    remembered with its body hash and features, in arrival order, until more than
    `max_entries` came after it or it is `window_ms` older than the newest."""
    from collections import OrderedDict

    rng = np.random.default_rng(3)
    window, limit = 50_000, 700
    d = DedupIndex(3, window, limit)
    ref: OrderedDict[str, tuple[int, int, np.ndarray]] = OrderedDict()
    newest, t, seen_kinds = -(2**62), 0, set()
    for step in range(300):
        n = int(rng.integers(1, 40))
        keys = [f"k{int(k)}" for k in rng.integers(0, 3_000, n)]
        bodies = rng.integers(0, 2, n)
        status, feats = d.check_many(keys, bodies)
        for key, body, seen, row in zip(keys, bodies, status, feats, strict=True):
            entry = ref.get(key)
            want = Seen.NEW if entry is None else Seen(1 + int(entry[0] != body))
            assert seen == want
            seen_kinds.add(want)
            assert np.array_equal(row, entry[2] if want is Seen.DUPLICATE else np.zeros(3))
        new = list(dict.fromkeys(k for k, s in zip(keys, status, strict=True) if s == Seen.NEW))
        times = t + rng.integers(0, 2_000, len(new))  # not in time order within a batch
        t += int(rng.integers(0, 3_000))
        values = rng.normal(size=(len(new), 3))
        body_of = {k: int(b) for k, b in zip(keys, bodies, strict=True)}
        d.record_many(new, np.array([body_of[k] for k in new]), times, values, new)
        for k, tm, v in zip(new, times.tolist(), values, strict=True):
            ref[k] = (body_of[k], tm, v)
            newest = max(newest, tm)
        while ref and (len(ref) > limit or next(iter(ref.values()))[1] < newest - window):
            ref.popitem(last=False)
        assert len(d) == len(ref)
        if step % 50 == 49:  # a snapshot restores the same index
            clone = DedupIndex(3, window, limit)
            clone.load(decode(encode(d.capture(full=True))))
            d = clone
    assert seen_kinds == set(Seen)  # new ids, retries and conflicts all came up


def redis_store(url: str) -> RedisStore:
    store = RedisStore(url, prefix=f"test-{uuid.uuid4().hex[:8]}")
    store._redis.ping()
    return store


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
@pytest.mark.parametrize("snapshot_every", [1_000_000, 7])
def test_restart_rebuilds_the_same_state(
    tmp_path: Path, backend: str, snapshot_every: int, redis_url: str
) -> None:
    """Kill (drop) every shard mid-stream, start new ones on the same store: the rest of the
    stream scores exactly as without the restart."""
    store = SqliteStore(tmp_path) if backend == "sqlite" else redis_store(redis_url)
    settings = {"state": {"backend": "memory", "snapshot_every": snapshot_every}}
    txs = stream(300)

    reference = ScoringPipeline(LocalShardClient(3, 2), FakeModel(), Thresholds())
    want = [run(reference.score(txs[a : a + 10], True)) for a in range(0, 300, 10)]

    first_client = LocalShardClient(3, 2, settings, store)
    first = ScoringPipeline(first_client, FakeModel(), Thresholds())
    got = [run(first.score(txs[a : a + 10], True)) for a in range(0, 150, 10)]
    for s in (*first_client.users, *first_client.terminals):
        s.flush()  # a dead process writes no more: its checkpoint landed or never will
    restarted_client = LocalShardClient(3, 2, settings, store)
    shards = (*restarted_client.users, *restarted_client.terminals)
    replayed = [s.replayed for s in shards]
    if snapshot_every == 7:
        # A snapshot bounds what must be replayed: to about two intervals, since a
        # checkpoint due while the last one is still being written (and its dedup entries
        # archived) is taken at the next record instead.
        assert max(replayed) < 2 * 7
    else:
        assert sum(replayed) == sum(s.seq for s in shards) > 0
    restarted = ScoringPipeline(restarted_client, FakeModel(), Thresholds())
    run(restarted.score(txs[140:150], True))  # a client retry of the last request: no effect
    got += [run(restarted.score(txs[a : a + 10], True)) for a in range(150, 300, 10)]
    assert got == want
    assert totals(restarted_client) == (300, 300)
    if backend == "redis":
        for s in (*restarted_client.users, *restarted_client.terminals):
            store.delete(s.name)


def test_a_write_the_store_refuses_changes_nothing() -> None:
    class Broken(MemoryStore):
        def append(self, shard: str, seq: int, record: bytes, epoch: int | None = None) -> None:
            raise StoreUnavailable("down")

    client = LocalShardClient(1, 1)
    p = ScoringPipeline(client, FakeModel(), Thresholds())
    run(p.score([tx(1, "a")]))
    client.users[0].store = Broken()
    with pytest.raises(StoreUnavailable):
        run(p.score([tx(2, "a", minute=1)]))
    assert totals(client) == (1, 1) and client.users[0].seq == 1


def test_stored_state_holds_no_raw_ids(tmp_path: Path) -> None:
    pan = "4111111111111111"
    client = LocalShardClient(1, 1, store=SqliteStore(tmp_path))
    p = ScoringPipeline(client, FakeModel(), Thresholds())
    run(
        p.score(
            [
                TransactionIn(
                    transaction_id=pan + "-tx",
                    user_id=pan,
                    terminal_id=pan,
                    amount=3.0,
                    timestamp="2018-06-01T10:00:00",
                )
            ]
        )
    )
    for shard in (*client.users, *client.terminals):
        shard.checkpoint()
    for f in tmp_path.iterdir():
        assert pan.encode() not in f.read_bytes(), f


def test_integer_dedup_keys_are_stored_in_binary() -> None:
    """As decimal text a 64-bit key can look like a card number to a log or state scan."""
    key = 4595368069267726
    d = DedupIndex(2, 3_600_000, 10)
    record(d, key, 0, 1_000)
    data = encode(d.capture(full=True))
    assert str(key).encode() not in data
    clone = DedupIndex(2, 3_600_000, 10)
    clone.load(decode(data))
    assert seen(clone, key, 0) is Seen.DUPLICATE
