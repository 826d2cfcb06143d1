"""A replica's store calls: quick appends on the event loop, everything else on one thread."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from actors.client.store_calls import StoreCalls
from actors.store.backends import MemoryStore, SqliteStore, StateStore


class Watched(SqliteStore):
    """Remembers which thread made each append."""

    threads: list[int]

    def append(self, shard: str, seq: int, record: bytes, epoch: int | None = None) -> None:
        self.threads.append(threading.get_ident())
        super().append(shard, seq, record, epoch)


@pytest.mark.parametrize("fsync", [False, True])
def test_appends_run_on_the_loop_only_when_the_store_says_they_are_quick(
    tmp_path: Path, fsync: bool
) -> None:
    store = Watched(tmp_path, fsync=fsync)
    store.threads = []
    calls = StoreCalls(store, "test")

    async def go() -> int:
        for seq in range(1, 51):
            await calls.append("record-x", seq, b"%d" % seq)
        return threading.get_ident()

    loop_thread = asyncio.run(go())
    calls.close()
    on_loop = {t == loop_thread for t in store.threads}
    assert on_loop == {not fsync}  # fsync: a disk flush never blocks the loop
    assert [r for _, r in store.load("record-x").log] == [b"%d" % s for s in range(1, 51)]


def test_a_checkpoint_on_the_thread_and_appends_on_the_loop_keep_every_record(
    tmp_path: Path,
) -> None:
    """The recorder's flush checkpoints on the thread while answers append on the loop:
    the records after the checkpoint stay, those it covers go, none twice."""
    stores: list[StateStore] = [MemoryStore(), SqliteStore(tmp_path)]
    for store in stores:
        calls = StoreCalls(store, "test")

        async def go(calls: StoreCalls = calls, store: StateStore = store) -> None:
            for seq in range(1, 201):
                await calls.append("outbox-x", seq, b"r%d" % seq)
                if seq % 50 == 0:  # covers what was appended by now, as a flush does
                    await calls.call(store.checkpoint, "outbox-x", seq - 10, b"", True)
            await calls.append("outbox-x", 201, b"r201")

        asyncio.run(go())
        calls.close()
        stored = store.load("outbox-x")
        assert stored.seq == 190
        assert [s for s, _ in stored.log] == list(range(191, 202))
