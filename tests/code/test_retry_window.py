"""A gateway retries for as long as it likes: a transaction id is recognised for the engine's
lateness (7 days of event time) whatever the volume in between, from the state store's
archive once it has left the shards' memory, and answered as it was the first time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from actors.actor.dedup import DedupArchive, archive_key
from actors.client.local import LocalShardClient
from actors.errors import TransactionConflict
from actors.store.backends import MemoryStore, SqliteStore
from deployments.http.schemas import LabelIn, TransactionIn
from deployments.scoring.pipeline import ScoringPipeline
from policy.decision import Thresholds
from tests.code.test_checkpoints import redis_store
from tests.code.test_pipeline import FakeModel

START = datetime(2018, 6, 1, tzinfo=UTC)
OTHERS = 500_000
BATCH = 5_000


def _tx(i: int | str, card: str, terminal: str, at: datetime, amount: float) -> TransactionIn:
    return TransactionIn(
        transaction_id=f"rw-{i}", user_id=card, terminal_id=terminal, amount=amount,
        timestamp=at.isoformat(),
    )  # fmt: skip


def _totals(shards: LocalShardClient) -> tuple[int, int]:
    return (
        sum(s.transactions for s in shards.users),
        sum(s.transactions for s in shards.terminals),
    )


def test_a_retry_after_500000_others_is_counted_once_and_answered_as_first(
    tmp_path: Path,
) -> None:
    """On SQLite, the durable default; the archive of every backend is checked below."""
    # Checkpoints every 20 requests (of 5,000 transactions): entries reach the archive, and
    # so may leave memory, as they would over hours of single requests.
    settings = {"state": {"backend": "sqlite", "path": str(tmp_path), "snapshot_every": 20}}
    shards = LocalShardClient(2, 2, settings)
    p = ScoringPipeline(shards, FakeModel(), Thresholds(review=0.5, block=0.9))

    async def go() -> None:
        history = [
            _tx(f"h{k}", "card-r", "term-r", START + timedelta(hours=k), 40.0 + k) for k in range(5)
        ]
        await p.score(history)
        # The terminal's first transaction turns out to be fraud: known before the retry
        # window ends, so features recomputed later would differ from the first answer's.
        original = _tx(0, "card-r", "term-r", START + timedelta(days=2), 730.0)
        first = (await p.score([original], include_features=True))[0]
        step = timedelta(days=5) / OTHERS  # 500,000 others over five days of event time
        for b in range(0, OTHERS, BATCH):
            batch = [
                _tx(i + 1, f"card-{i % 40_000}", f"term-{i % 3_000}",
                    START + timedelta(days=2) + step * (i + 1), 5.0 + i % 200)
                for i in range(b, b + BATCH)
            ]  # fmt: skip
            await p.score(batch)
        await p.feedback([LabelIn(transaction_id="rw-0", terminal_id="term-r", is_fraud=True)])
        await p.feedback([LabelIn(transaction_id="rw-h4", terminal_id="term-r", is_fraud=True)])
        before = _totals(shards)
        hits = sum(s.dedup.hits for s in shards.users)
        reads = sum(s.dedup.archive_reads for s in shards.users)
        again = (await p.score([original], include_features=True))[0]
        assert again == first
        assert _totals(shards) == before  # counted once: no card or terminal state changed
        assert sum(s.dedup.hits for s in shards.users) == hits + 1
        # found in the archive: it had left memory (only a key missing there is looked up)
        assert sum(s.dedup.archive_reads for s in shards.users) == reads + 1
        # The same id with another body is still a conflict, a week of event time later.
        with pytest.raises(TransactionConflict):
            await p.score([_tx(0, "card-r", "term-r", START + timedelta(days=2), 1.0)])
        # A restart recognises it too: the archive is in the store, not in memory.
        restarted = ScoringPipeline(
            LocalShardClient(2, 2, settings), FakeModel(), Thresholds(review=0.5, block=0.9)
        )
        assert (await restarted.score([original], include_features=True))[0] == first

    asyncio.run(go())


@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis"])
def test_every_store_archives_by_key_and_expires_by_whole_days(
    backend: str, tmp_path: Path, redis_url: str
) -> None:
    day = 86_400_000
    stores = {"memory": MemoryStore, "sqlite": lambda: SqliteStore(tmp_path)}
    store = redis_store(redis_url) if backend == "redis" else stores[backend]()
    archive = DedupArchive(store, "user", "user-0-of-1", retain_ms=7 * day)
    t0 = 1_600_000_000_000 - 1_600_000_000_000 % day
    keys = ["a", "b", "c"]
    times = np.array([t0, t0 + 3 * day, t0 + 9 * day])
    feats = np.arange(6, dtype=np.float64).reshape(3, 2) / 7
    archive.put(keys, np.array([11, -12, 13]), times, feats)
    got = archive.get(["b", "zz", "a"], np.array([times[1], t0, times[0]]))
    assert got[1] is None and got[0] is not None and got[2] is not None
    assert got[0][0] == -12 and got[0][1].tolist() == feats[1].tolist()
    archive.put(["a"], np.array([99]), times[:1], feats[2:])  # stored again: replaced
    assert archive.get(["a"], times[:1])[0][0] == 99  # type: ignore[index]
    # Another layout's shard finds what this one archived (a rescale moves nothing).
    other = DedupArchive(store, "user", "user-1-of-3", retain_ms=7 * day)
    assert other.get(["b"], times[1:2])[0] is not None
    assert DedupArchive(store, "terminal", "terminal-0-of-1", 7 * day).get(["b"], times[1:2]) == [
        None
    ]
    other.expire(int(times[2]))  # keeps 7 days behind the newest: "a" (9 days) goes
    assert [g is None for g in archive.get(keys, times)] == [True, False, False]
    # A terminal shard's 64-bit transaction key is not stored as its decimal digits, which
    # could read as a card number (this one is Luhn-valid).
    pan_like = 4072016377356093
    assert archive_key(pan_like) != str(pan_like) and "4072016377356093" not in archive_key(
        pan_like
    )
    archive.put([pan_like], np.array([5]), times[2:], feats[:1])
    assert archive.get([pan_like], times[2:])[0][0] == 5  # type: ignore[index]


def test_a_sqlite_archive_of_the_one_table_form_is_still_read_and_expired(
    tmp_path: Path,
) -> None:
    import sqlite3

    day = 86_400_000
    t0 = 1_600_000_000_000 - 1_600_000_000_000 % day
    old = sqlite3.connect(tmp_path / "archive-user-user-0-of-1.archive.sqlite")
    old.execute(
        "CREATE TABLE archive (key TEXT PRIMARY KEY, day INTEGER NOT NULL, value BLOB NOT NULL)"
    )
    value = np.array([7], "<i8").tobytes() + np.array([0.5, 0.25], "<f8").tobytes()
    old.execute("INSERT INTO archive VALUES (?, ?, ?)", ("old", t0 // day, value))
    old.commit()
    old.close()
    archive = DedupArchive(SqliteStore(tmp_path), "user", "user-0-of-1", retain_ms=7 * day)
    archive.put(["new"], np.array([8]), np.array([t0 + day]), np.array([[1.0, 2.0]]))
    got = archive.get(["old", "new"], np.array([t0, t0 + day]))
    assert got[0] is not None and got[0][0] == 7 and got[0][1].tolist() == [0.5, 0.25]
    assert got[1] is not None and got[1][0] == 8
    archive.expire(t0 + 9 * day)  # both days are more than 7 behind the newest: both go
    assert archive.get(["old", "new"], np.array([t0, t0 + day])) == [None, None]


def test_a_sqlite_day_table_another_connection_dropped_first_expires_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each thread has its own connection: a table listed by one may be gone (expired by
    another) by the time it drops it. Seen in `benchmarks compare`: a card shard's
    checkpoint failed on "no such table: d17643"."""
    day = 86_400_000
    store = SqliteStore(tmp_path)
    store.archive("user-0-of-1", [("k", 5 * day, b"v")])
    listed = SqliteStore._archive_tables

    def stale(conn: object) -> set[str]:
        return {*listed(conn), "d3"}  # type: ignore[arg-type]  # listed, then dropped elsewhere

    monkeypatch.setattr(SqliteStore, "_archive_tables", staticmethod(stale))
    store.expire_archive("user-0-of-1", 20 * day)  # drops d5, and d3 is already gone
    monkeypatch.undo()
    assert store.archived("user-0-of-1", [("k", 5 * day)]) == [None]
