"""Stage timings: a request that asks gets each stage of its path in `Server-Timing`, in
order, adding up to its total; one that does not ask gets nothing extra."""

from __future__ import annotations

import orjson
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.responses import Response

from actors.client.local import LocalShardClient
from deployments.http.fast_route import SingleTransactionRoute
from deployments.http.schemas import TransactionIn
from deployments.http.timing import StageTiming
from deployments.scoring.microbatch import MicroBatcher
from deployments.scoring.pipeline import ScoringPipeline
from deployments.scoring.stages import STAGES
from policy.decision import Thresholds
from tests.code.test_pipeline import FakeModel


class Target:
    """The ingress's single-transaction path: micro-batcher, then the pipeline."""

    def __init__(self) -> None:
        pipeline = ScoringPipeline(LocalShardClient(2, 2), FakeModel(), Thresholds())
        self.batcher = MicroBatcher(lambda txs, d: pipeline.score_items(txs, False, d))

    async def score_single(
        self, tx: TransactionIn, include_features: bool = False, deadline_ms: str | None = None
    ) -> Response:
        out = (await self.batcher.submit([tx]))[0]
        assert out is not None
        return Response(orjson.dumps({"decision": out.decision}), media_type="application/json")


def _client() -> TestClient:
    app = FastAPI()
    target = Target()
    app.add_middleware(SingleTransactionRoute, find_target=lambda: target)
    app.add_middleware(StageTiming)
    return TestClient(app)


def _body(i: int) -> bytes:
    return orjson.dumps({
        "transaction_id": f"st-{i}", "user_id": "card-1", "terminal_id": "term-1",
        "amount": 950.0, "timestamp": f"2018-06-01T10:00:{i:02d}",
    })  # fmt: skip


def test_a_timed_request_gets_every_stage_in_order_and_an_untimed_one_nothing() -> None:
    with _client() as http:
        json_ = {"content-type": "application/json"}
        plain = http.post("/v1/transactions", content=_body(1), headers=json_)
        assert plain.status_code == 200 and "server-timing" not in plain.headers
        timed = http.post(
            "/v1/transactions", content=_body(2), headers={**json_, "x-fraud-timing": "1"}
        )
        assert timed.status_code == 200 and timed.json() == {"decision": "BLOCK"}
    parts = [p.strip().split(";dur=") for p in timed.headers["server-timing"].split(",")]
    names = [name for name, _ in parts]
    durations = {name: float(ms) for name, ms in parts}
    # no desk here: "record" is the sink's stage, absent without one
    assert names == [s for s in STAGES if s != "record"] + ["total"]
    assert all(ms >= 0 for ms in durations.values())
    total = durations.pop("total")
    assert abs(sum(durations.values()) - total) < 0.01  # each stage once, nothing between
