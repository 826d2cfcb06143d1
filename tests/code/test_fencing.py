"""A shard replaced while cut off from the cluster (a partition: Ray declared its node dead
and started it elsewhere) may still have a write in flight; once the link heals that write
arrives late. Every store refuses it (`Fenced`), so it never overwrites what the new
incarnation journaled under the same sequence number (the host-failure drill's link cut
found exactly that on Redis: one card's transaction gone after a rebuild)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.actor.layout import ShardMoved
from actors.actor.shards import UserShard
from actors.store.backends import Fenced, MemoryStore, RedisStore, SqliteStore, StateStore
from tests.code.test_events import _card

SETTINGS = {"state": {"backend": "memory", "snapshot_every": 1000}}


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "sqlite":
        yield SqliteStore(tmp_path)
    else:
        url = request.getfixturevalue("redis_url")
        yield RedisStore(url, prefix=f"fence-{tmp_path.name}")


def test_a_replaced_writer_s_late_writes_are_refused(store: StateStore) -> None:
    old = store.fence("user-0-of-1")
    store.append("user-0-of-1", 1, b"by the first", old)
    new = store.fence("user-0-of-1")  # the replacement starts: it loads seq 1
    assert new > old
    store.append("user-0-of-1", 2, b"by the second", new)
    with pytest.raises(Fenced):  # the first's write of seq 2, delivered late
        store.append("user-0-of-1", 2, b"late, by the first", old)
    with pytest.raises(Fenced):
        store.checkpoint("user-0-of-1", 2, b"late checkpoint", True, old)
    assert store.load("user-0-of-1").log == [(1, b"by the first"), (2, b"by the second")]
    store.checkpoint("user-0-of-1", 2, b"state", True, new)
    assert store.load("user-0-of-1").base == b"state"
    store.append("outbox-x", 1, b"a writer alone by construction")  # no epoch: no check
    assert store.load("outbox-x").log == [(1, b"a writer alone by construction")]


def test_a_replaced_shard_refuses_work_and_its_successor_keeps_everything() -> None:
    store = MemoryStore()
    first = UserShard(0, 1, SETTINGS, store)
    first.process(_card(3))
    second = UserShard(0, 1, SETTINGS, store)  # Ray restarted it elsewhere
    second.process(_card(2, start=3))
    with pytest.raises(ShardMoved):  # the cut-off one: its client finds the new one
        first.process(_card(1, start=5))
    assert first.sealed
    rebuilt = UserShard(0, 1, SETTINGS, store)
    assert rebuilt.transactions == 5 == second.transactions
