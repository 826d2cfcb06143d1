"""The replica's report to the desk: batches are delivered once, whatever fails after."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

from actors.client.desk import PendingDecisions
from actors.client.outbox import DeskOutbox
from actors.store.backends import MemoryStore
from deployments.scoring import reporter as reporter_module
from deployments.scoring.pipeline import ShadowStats
from deployments.scoring.reporter import Reporter


class Batch:
    """Stands in for a `DecidedBatch`: the reporter only moves batches and counts rows."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)


class Desk:
    """A `DeskClient` whose `tick` fails `desk_fails` times first."""

    def __init__(self, desk_fails: int) -> None:
        self.delivered: list[Batch] = []
        self.desk_fails = desk_fails

    async def tick(self, replica: str, batches: list[Any], *rest: Any) -> dict[str, int]:
        if self.desk_fails > 0:
            self.desk_fails -= 1
            raise ConnectionError("desk restarting")
        self.delivered += batches
        return {"policy_version": 1, "reviews_open": 0}


class DeskService:
    async def refresh_policy(self, version: int) -> None:
        return None


class Writes:
    retries = 0


class Late:
    retries = 0
    pending = 0


class Pipeline:
    shadow = ShadowStats()
    shards = object()
    writes = Writes()
    late = Late()
    degraded: ClassVar[dict[str, int]] = {}
    recorder = None  # no decision record
    drift = None  # no drift monitor
    recent = None  # no ring for rule previews

    async def resend_recent(self) -> int:
        return 0

    async def adopt_late(self) -> int:
        return 0


class DeadModel:
    class served:  # mirrors a DeploymentHandle method
        @staticmethod
        async def remote() -> dict[str, Any]:
            raise ConnectionError("model replica gone")


class Metrics:
    def state(self, *args: Any) -> None:
        return None

    def flush(self, *args: Any) -> None:
        return None


@pytest.mark.parametrize("desk_fails", [0, 2])
def test_batches_reach_the_desk_once_even_when_the_model_is_down(
    monkeypatch: pytest.MonkeyPatch, desk_fails: int
) -> None:
    monkeypatch.setattr(reporter_module, "REPORT_INTERVAL_S", 0.01)
    desk = Desk(desk_fails)
    sink = DeskOutbox(MemoryStore(), desk, PendingDecisions())  # type: ignore[arg-type]
    sink.pending.put_back([Batch(["a"]), Batch(["b"])])  # type: ignore[list-item]
    r = Reporter(sink, DeskService(), Pipeline(), DeadModel(), Metrics())  # type: ignore[arg-type]

    async def scenario() -> None:
        r.ensure_running()
        await asyncio.sleep(0.2)  # ~20 ticks: the model card fails on every other one

    asyncio.run(scenario())
    # A desk that was away gets the held batches later; a model that is away costs nothing.
    assert [b.ids for b in desk.delivered] == [["a"], ["b"]]
    assert sink.pending.take() == []


def test_the_report_tick_moves_buffered_first_answers_into_the_preview_ring(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The answer path only buffers rows for a rule preview; without a tick moving them
    into the ring, the buffer would grow for as long as nobody asks for a preview."""
    import numpy as np

    from policy.preview import RecentDecisions

    monkeypatch.setattr(reporter_module, "REPORT_INTERVAL_S", 0.01)
    pipeline = Pipeline()
    ring = RecentDecisions(2, capacity=4)
    pipeline.recent = ring  # type: ignore[assignment]
    for i in range(3):
        ids = np.arange(2) + 2 * i
        ring.add(np.zeros((2, 2)), ids / 10, ids.astype(np.int8), ids, ids, ids)
    desk = Desk(0)
    sink = DeskOutbox(MemoryStore(), desk, PendingDecisions())  # type: ignore[arg-type]
    r = Reporter(sink, DeskService(), pipeline, DeadModel(), Metrics())  # type: ignore[arg-type]

    async def scenario() -> None:
        r.ensure_running()
        await asyncio.sleep(0.1)

    asyncio.run(scenario())
    assert ring._buffer == []  # moved by the tick, not by a read
    assert ring._filled == 4 and ring.rows().tx_keys.tolist() == [2, 3, 4, 5]  # the newest
