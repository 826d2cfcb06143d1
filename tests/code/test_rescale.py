"""Changing shard counts moves key groups with their state: every later score equals the
one a run without the change gives, retries keep their first answers, and a move that
stopped part-way is finished by the next."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors.actor.layout import KeyGroupsChanged, ShardMoved, ensure_layout, read_layout
from actors.actor.shards import SHARDS, UserShard
from actors.client.local import LocalShardClient
from actors.events import CardEvents
from actors.store.backends import MemoryStore, SqliteStore, StateStore
from deployments.scoring.pipeline import ScoringPipeline
from features.groups import group_range, owner_of
from policy.decision import Thresholds
from tests.code.test_exactly_once import run, stream, totals
from tests.code.test_pipeline import FakeModel

SETTINGS = {"state": {"backend": "memory", "snapshot_every": 5, "compact_every": 3}}


def answers(client: LocalShardClient, txs: list[Any], a: int, b: int) -> list[Any]:
    p = ScoringPipeline(client, FakeModel(), Thresholds())
    return [run(p.score(txs[i : i + 10], True)) for i in range(a, b, 10)]


def test_group_ranges_partition_the_groups() -> None:
    for n in (1, 3, 4, 7, 4096):
        ranges = [group_range(i, n, 4096) for i in range(n)]
        assert ranges[0][0] == 0 and ranges[-1][1] == 4096
        assert all(ranges[i][1] == ranges[i + 1][0] for i in range(n - 1))
        for i, (lo, hi) in enumerate(ranges):
            assert (owner_of(np.arange(lo, hi), 4096, n) == i).all()


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_rescale_4_7_3_scores_as_without(tmp_path: Path, backend: str) -> None:
    txs = stream(600)
    want = answers(LocalShardClient(4, 2, SETTINGS), txs, 0, 600)
    store: StateStore = MemoryStore() if backend == "memory" else SqliteStore(tmp_path)
    client = LocalShardClient(4, 2, SETTINGS, store)
    got = answers(client, txs, 0, 200)
    old = client.users[0]
    client.rescale(7, 3)
    with pytest.raises(ShardMoved):  # the old layout's shard takes no more writes
        old.process(
            CardEvents.without_writes(
                ["x"], np.array([1]), ["c"], np.array([1]), np.array([1.0]), np.ones(1, np.int32)
            )
        )
    assert (
        run(ScoringPipeline(client, FakeModel(), Thresholds()).score(txs[190:200], True)) == got[-1]
    )
    got += answers(client, txs, 200, 400)
    client.rescale(3, 2)
    got += answers(client, txs, 400, 600)
    assert got == want
    assert totals(client) == (600, 600)  # nothing lost or counted twice
    layout = read_layout(store, "user")
    assert layout is not None and (layout.n_shards, layout.epoch) == (3, 2)
    for n in (4, 7):  # the old layouts' state is gone from the store
        for i in range(n):
            stored = store.load(f"user-{i}-of-{n}")
            assert stored.base is None and stored.log == []
    # A shard of an old layout started again (a stray or restarted actor) starts sealed.
    with pytest.raises(ShardMoved):
        UserShard(0, 4, SETTINGS, store).process(
            CardEvents.without_writes(
                ["y"], np.array([2]), ["c"], np.array([1]), np.array([1.0]), np.ones(1, np.int32)
            )
        )
    again = LocalShardClient(3, 2, SETTINGS, store)  # the new layout restarts from its state
    assert totals(again) == (600, 600)


class Crash(RuntimeError):
    pass


def test_a_move_stopped_part_way_is_finished_by_the_next() -> None:
    txs = stream(300)
    want = answers(LocalShardClient(4, 2, SETTINGS), txs, 0, 300)
    store = MemoryStore()
    client = LocalShardClient(4, 2, SETTINGS, store)
    got = answers(client, txs, 0, 150)
    made: dict[tuple[int, int], Any] = {}
    calls = 0

    def crashing(i: int, n: int, method: str, *args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 7:  # the old shards sealed, two new ones taken over, then a crash
            raise Crash
        key = (i, n)
        if n == 4:  # the layout in service: its running shards (a second incarnation of
            return getattr(client.users[i], method)(*args)  # one would fence the first)
        if key not in made:
            made[key] = SHARDS["user"](i, n, SETTINGS, store)
        return getattr(made[key], method)(*args)

    with pytest.raises(Crash):
        ensure_layout(store, "user", 5, 4096, crashing)
    layout = read_layout(store, "user")
    assert layout is not None and (layout.n_shards, layout.moving_to) == (4, 5)
    client.rescale(5, 2)  # a new start finishes the move
    got += answers(client, txs, 150, 300)
    assert got == want and totals(client) == (300, 300)


def test_key_groups_are_fixed_for_a_store() -> None:
    store = MemoryStore()
    LocalShardClient(2, 1, SETTINGS, store)
    with pytest.raises(KeyGroupsChanged, match="built with 4096 key groups"):
        LocalShardClient(2, 1, {**SETTINGS, "key_groups": 1024}, store)
