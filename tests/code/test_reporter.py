"""The replica's report to the desk: batches are delivered once, whatever fails after."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from deployments import reporter as reporter_module
from deployments.pipeline import ShadowStats
from deployments.reporter import Reporter


class Shards:
    def __init__(self, desk_fails: int) -> None:
        self.pending = [{"ids": ["a"]}, {"ids": ["b"]}]
        self.delivered: list[dict[str, Any]] = []
        self.desk_fails = desk_fails

    def take_pending(self) -> list[dict[str, Any]]:
        out, self.pending = self.pending, []
        return out

    def put_back(self, batches: list[dict[str, Any]]) -> None:
        self.pending[:0] = batches

    async def desk(self, method: str, replica: str, batches: list[Any], *rest: Any) -> Any:
        if self.desk_fails > 0:
            self.desk_fails -= 1
            raise ConnectionError("desk restarting")
        self.delivered += batches
        return {"policy_version": 1, "reviews_open": 0}


class DeskService:
    async def refresh_policy(self, version: int) -> None:
        return None


class Pipeline:
    shadow = ShadowStats()


class DeadModel:
    class card:  # mirrors a DeploymentHandle method
        @staticmethod
        async def remote() -> dict[str, Any]:
            raise ConnectionError("model replica gone")


class Metrics:
    def state(self, *args: Any) -> None:
        return None


@pytest.mark.parametrize("desk_fails", [0, 2])
def test_batches_reach_the_desk_once_even_when_the_model_is_down(
    monkeypatch: pytest.MonkeyPatch, desk_fails: int
) -> None:
    monkeypatch.setattr(reporter_module, "REPORT_INTERVAL_S", 0.01)
    shards = Shards(desk_fails)
    r = Reporter(shards, DeskService(), Pipeline(), DeadModel(), Metrics())  # type: ignore[arg-type]

    async def scenario() -> None:
        r.ensure_running()
        await asyncio.sleep(0.2)  # ~20 ticks: the model card fails on every other one

    asyncio.run(scenario())
    # A desk that was away gets the held batches later; a model that is away costs nothing.
    assert [b["ids"] for b in shards.delivered] == [["a"], ["b"]]
