"""Checkpoints: the typed record format, incremental checkpoints that fold to the live
state, a lost checkpoint, and stores of the retired pickle format refused."""

from __future__ import annotations

import pickle
import sqlite3
import uuid
from pathlib import Path

import msgpack
import numpy as np
import pytest

from actors.actor.journal import Journaled
from actors.actor.shards import TerminalShard, UserShard
from actors.client.local import LocalShardClient
from actors.events import CardEvents
from actors.store import backends as state_store
from actors.store import records
from actors.store.backends import MemoryStore, RedisStore, SqliteStore, StateStore
from actors.store.records import RecordFormatError, decode, encode
from deployments.scoring.pipeline import ScoringPipeline
from features.state import TerminalStore, UserStore
from policy.decision import Thresholds
from tests.code.test_exactly_once import run, stream, tx
from tests.code.test_pipeline import FakeModel


def test_records_round_trip_plain_values_and_arrays() -> None:
    value = {
        "ids": ["a", "b"],
        "n": 2**40,
        "x": 1.5,
        "none": None,
        "raw": b"\x00\x01",
        "arrays": [np.arange(5, dtype=np.int8), np.zeros((3, 2)), np.array([True, False])],
        "scalar": np.float64(2.5),
        3: "an int key",
    }
    back = decode(encode(value))
    assert back["ids"] == ["a", "b"] and back["n"] == 2**40 and back[3] == "an int key"
    assert back["scalar"] == 2.5 and back["raw"] == b"\x00\x01" and back["none"] is None
    for got, want in zip(back["arrays"], value["arrays"], strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        got[...] = 0  # restored arrays are the state's own: writable
    assert decode(encode(("tx", [1, 2])))[0] == "tx"  # tuples come back as lists


def _record_with_array(dtype: str, shape: list[int], raw: bytes) -> bytes:
    ext = msgpack.ExtType(1, msgpack.packb([dtype, shape, raw], use_bin_type=True))
    return records.MAGIC + bytes([records.VERSION]) + msgpack.packb({"a": ext})


class Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pickle ran",))


def test_records_refuse_pickles_other_versions_and_unsafe_arrays() -> None:
    with pytest.raises(RecordFormatError, match=r"retired pickle format.*state\.path"):
        decode(pickle.dumps(Boom(), protocol=5))
    with pytest.raises(RecordFormatError, match="format version 2, this build reads 1"):
        decode(records.MAGIC + b"\x02" + msgpack.packb({}))
    with pytest.raises(RecordFormatError, match="not a state record"):
        decode(b"{}")
    with pytest.raises(RecordFormatError, match=r"dtype '\|O' is not allowed"):
        decode(_record_with_array("|O", [1], b"\x00" * 8))
    with pytest.raises(RecordFormatError, match="not allowed"):
        decode(_record_with_array("[('a', '<i8')]", [1], b"\x00" * 8))
    with pytest.raises(RecordFormatError, match="size does not match"):
        decode(_record_with_array("<i8", [4], b"\x00" * 8))
    with pytest.raises(RecordFormatError, match="unknown extension type 7"):
        ext = msgpack.ExtType(7, b"")
        decode(records.MAGIC + bytes([records.VERSION]) + msgpack.packb(ext))
    with pytest.raises(RecordFormatError, match="unreadable"):
        decode(records.MAGIC + bytes([records.VERSION]) + b"\xc1")
    with pytest.raises(TypeError, match="dtype object"):
        encode(np.array([object()]))


def _ring_ops(rng: np.random.Generator, store: UserStore, n: int, t: int) -> int:
    ids = [f"c{i}" for i in rng.integers(0, 60, n)]
    times = t + np.sort(rng.integers(0, 3_600_000, n))
    store.update(store.slots_for(ids), times, rng.uniform(1, 90, n), rng.integers(0, 9, n))
    return int(times[-1])


def _assert_same_form(got: dict, want: dict) -> None:  # type: ignore[type-arg]
    assert got["ids"] == want["ids"] and got["n"] == want["n"]
    for part in ("scalars", "events"):
        assert got[part].keys() == want[part].keys()
        for k in want[part]:
            np.testing.assert_array_equal(got[part][k], want[part][k], err_msg=f"{part}.{k}")


def test_captures_fold_to_the_whole_state() -> None:
    """Deltas taken at random points and folded onto the first whole capture give what a
    whole capture of the live store gives; and rings grown, shrunk and compacted meanwhile
    change nothing in the captures."""
    rng = np.random.default_rng(4)
    store = UserStore(16, initial_rows=4)
    t = _ring_ops(rng, store, 50, 1_530_000_000_000)
    folded = decode(encode(store.capture(full=True)))
    for step in range(40):
        t = _ring_ops(rng, store, int(rng.integers(1, 80)), t + int(rng.integers(0, 9e7)))
        if step % 7 == 3:
            store.compact()
        if rng.random() < 0.5:
            folded = UserStore.merge(folded, decode(encode(store.capture(full=False))))
    folded = UserStore.merge(folded, store.capture(full=False))
    _assert_same_form(folded, store.capture(full=True))
    assert store.capture(full=False)["rows"].size == 0  # nothing changed since
    # The folded form restores a store that continues identically.
    clone = UserStore.from_form(folded, 16)
    ids, times = ["c1", "c2", "new"], np.full(3, t + 1)
    args = (np.ones(3) * 5.0, np.arange(3))
    np.testing.assert_array_equal(
        clone.update(clone.slots_for(ids), times, *args),
        store.update(store.slots_for(ids), times, *args),
    )


def test_terminal_labels_reach_the_next_delta() -> None:
    store = TerminalStore(32, label_delay_ms=0, initial_rows=2)
    slots = store.slots_for(["t1", "t2"])
    store.step(
        np.zeros(2, np.int8), slots, np.array([1, 2]), np.array([10, 11]), np.zeros(2, np.int8)
    )
    base = store.capture(full=True)
    store.step(np.ones(1, np.int8), slots[:1], np.array([3]), np.array([10]), np.ones(1, np.int8))
    delta = store.capture(full=False)
    assert delta["rows"].tolist() == [0]  # the labelled terminal only
    folded = TerminalStore.merge(base, delta)
    _assert_same_form(folded, store.capture(full=True))
    assert folded["events"]["fraud"].tolist() == [1, 0]


def redis_store(url: str) -> RedisStore:
    store = RedisStore(url, prefix=f"test-{uuid.uuid4().hex[:8]}")
    store._redis.ping()
    return store


@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis"])
def test_incremental_checkpoints_rebuild_the_live_state(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    """Checkpoints every 3 requests, folded every 4, each stored in many parts: what the
    store holds, folded and with its log replayed, is the live state; the log is trimmed
    behind the checkpoints."""
    monkeypatch.setattr(state_store, "SQLITE_PART_BYTES", 1000)
    monkeypatch.setattr(state_store, "CHUNK_BYTES", 1000)
    stores: dict[str, StateStore] = {"memory": MemoryStore(), "sqlite": SqliteStore(tmp_path)}
    store = stores[backend] if backend != "redis" else redis_store(redis_url)
    settings = {"state": {"backend": "memory", "snapshot_every": 3, "compact_every": 4}}
    client = LocalShardClient(2, 2, settings, store)
    p = ScoringPipeline(client, FakeModel(), Thresholds())
    txs = stream(400)
    for a in range(0, 400, 8):
        run(p.score(txs[a : a + 8]))
    shards: list[Journaled] = [*client.users, *client.terminals]
    for s in shards:
        s.flush()
        stored = store.load(s.name)
        assert stored.seq == s.snapshot_seq > 0 and len(stored.deltas) < 4, s.name
        # The log holds exactly what the last checkpoint does not cover.
        assert [seq for seq, _ in stored.log] == list(range(stored.seq + 1, s.seq + 1))
        assert stored.base is not None and s.checkpoint_failures == 0
        again = type(s)(s.shard, s.n_shards, settings, store)
        assert again.seq == s.seq and again.replayed == len(stored.log)
        live, rebuilt = s._capture(full=True), again._capture(full=True)
        part = "users" if isinstance(s, UserShard) else "terminals"
        _assert_same_form(rebuilt[part], live[part])
        assert rebuilt["dedup"]["keys"] == live["dedup"]["keys"]
        np.testing.assert_array_equal(rebuilt["dedup"]["feats"], live["dedup"]["feats"])
        assert again.transactions == s.transactions > 0
    if isinstance(store, RedisStore):
        for s in shards:
            store.delete(s.name)
        store.delete(client.desk_state.name)


class FlakyStore(MemoryStore):
    """Refuses the next `fail` checkpoints."""

    fail = 0

    def checkpoint(
        self, shard: str, seq: int, data: bytes, full: bool, epoch: int | None = None
    ) -> None:
        if self.fail:
            self.fail -= 1
            raise OSError("disk full")
        super().checkpoint(shard, seq, data, full, epoch)


def test_a_lost_checkpoint_makes_the_next_one_whole() -> None:
    store = FlakyStore()
    settings = {"state": {"backend": "memory", "snapshot_every": 2, "compact_every": 100}}
    shard = UserShard(0, 1, settings, store)

    def step(i: int) -> None:
        shard.process(CardEvents.without_writes(
            [f"tx{i}"], np.array([i]), [f"c{i % 5}"], np.array([1_530_000_000_000 + i * 1000]),
            np.array([10.0 + i]), np.array([i], np.int32),
        ))  # fmt: skip
        shard.flush()

    for i in range(4):
        step(i)
    store.fail = 1
    for i in range(4, 6):  # this capture is lost...
        step(i)
    assert shard.checkpoint_failures == 1
    assert [s for s, _ in store.load(shard.name).log] == [5, 6]  # ...the journal keeps them
    for i in range(6, 8):  # ...and the next capture holds every card, not just the changed
        step(i)
    stored = store.load(shard.name)
    assert stored.base is not None and stored.deltas == [] and stored.log == []
    again = UserShard(0, 1, settings, store)
    _assert_same_form(again._capture(True)["users"], shard._capture(True)["users"])


def _batch(first: int, n: int) -> CardEvents:
    i = np.arange(first, first + n)
    return CardEvents.without_writes(
        [f"tx{k}" for k in i], i, [f"c{k % 7}" for k in i], 1_530_000_000_000 + i * 1000,
        10.0 + i, i.astype(np.int32),
    )  # fmt: skip


def test_batches_are_checkpointed_by_their_rows() -> None:
    """History replayed in batches is checkpointed as it goes (`snapshot_rows`), so no later
    request meets a capture of all of it, and a restart replays a bounded number of rows."""
    store = MemoryStore()
    settings = {"state": {"backend": "memory", "snapshot_every": 1_000, "snapshot_rows": 50}}
    shard = UserShard(0, 1, settings, store)
    for b in range(6):  # 6 requests of 20 rows: far below 1,000 requests
        shard.process(_batch(20 * b, 20))
        shard.flush()
    assert shard.snapshot_seq == 6  # a capture after the 3rd and the 6th request (60 rows)
    stored = store.load(shard.name)
    assert stored.seq == 6 and stored.log == []
    for b in range(6, 8):  # 40 rows: under the limit, so they wait in the journal
        shard.process(_batch(20 * b, 20))
    assert [s for s, _ in store.load(shard.name).log] == [7, 8]
    again = UserShard(0, 1, settings, store)  # the rows replayed count toward the next
    again.process(_batch(160, 20))
    again.flush()
    assert again.snapshot_seq == again.seq == 9 and store.load(shard.name).log == []
    _assert_same_form(store_form(store, shard.name)["users"], again._capture(True)["users"])


def store_form(store: StateStore, name: str) -> dict:  # type: ignore[type-arg]
    form = UserShard._fold(store.load(name))
    assert form is not None
    return form


def test_stores_of_the_retired_pickle_format_are_refused(tmp_path: Path, redis_url: str) -> None:
    old = sqlite3.connect(tmp_path / "user-0-of-1.sqlite")
    old.execute("CREATE TABLE snapshot (id INTEGER PRIMARY KEY, seq INTEGER, data BLOB)")
    old.execute("INSERT INTO snapshot VALUES (0, 5, ?)", (pickle.dumps({"users": b""}),))
    old.commit()
    with pytest.raises(RecordFormatError, match="retired pickle format"):
        UserShard(0, 1, None, SqliteStore(tmp_path))

    store = MemoryStore()  # a journal record pickled by the retired format
    store.append("terminal-0-of-1", 1, pickle.dumps(("step",), protocol=5))
    with pytest.raises(RecordFormatError, match="retired pickle format"):
        TerminalShard(0, 1, None, store)

    redis = redis_store(redis_url)
    redis._redis.hset(redis._key("user-0-of-1", "snapshot"), mapping={"seq": 1, "data": b"\x80"})
    try:
        with pytest.raises(RecordFormatError, match=r"state\.prefix"):
            UserShard(0, 1, None, redis)
    finally:
        redis.delete("user-0-of-1")


def test_the_desk_rebuilds_from_its_checkpoint_without_pickle() -> None:
    store = MemoryStore()
    client = LocalShardClient(1, 1, store=store)
    p = ScoringPipeline(client, FakeModel(), Thresholds(review=0.5, block=0.9), sink=client.sink)
    run(p.score([*stream(60), *(tx(1000 + i, "big", 600.0, i) for i in range(5))]))
    client.desk_state.checkpoint()
    data = store.load(client.desk_state.name).base
    assert data is not None and data.startswith(records.MAGIC)
    again = LocalShardClient(1, 1, store=store).desk_state
    assert decode(encode(again._capture(True))) == decode(encode(client.desk_state._capture(True)))
    assert again.stats()["reviews_open"] == client.desk_state.stats()["reviews_open"] > 0


def test_compaction_runs_in_a_process_of_its_own(tmp_path: Path) -> None:
    """A shard whose store it opened from its config folds its incremental checkpoints in
    `python -m actors.actor.compactor`: afterwards the store holds one full checkpoint, and a
    restart rebuilds the live state from it."""
    state = {"backend": "sqlite", "path": str(tmp_path), "snapshot_every": 2, "compact_every": 2}
    shard = UserShard(0, 1, {"state": state})
    for i in range(9):
        shard.process(CardEvents.without_writes(
            [f"tx{i}"], np.array([i]), [f"c{i % 3}"], np.array([1_530_000_000_000 + i * 1000]),
            np.array([10.0 + i]), np.array([i], np.int32),
        ))  # fmt: skip
        shard.flush()
    kinds = [k for k, _, _ in shard.checkpoint_times]
    assert "compaction" in kinds and shard.checkpoint_failures == 0, kinds
    stored = shard.store.load(shard.name)
    assert stored.base is not None and len(stored.deltas) < 2
    again = UserShard(0, 1, {"state": state})
    _assert_same_form(again._capture(True)["users"], shard._capture(True)["users"])
    assert again.transactions == 9
