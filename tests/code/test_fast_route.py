"""The fast single-transaction route answers exactly as the FastAPI route it stands in for.

Two apps with the same route and handler, one with `SingleTransactionRoute` in front: every
request of a corpus (valid, malformed, refused, conflicting, unavailable) must get the same
status, body and headers from both, and only the valid ones may skip FastAPI.
"""

from __future__ import annotations

import orjson
import pytest
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient
from starlette.responses import Response

from actors.errors import TransactionConflict, Unavailable
from deployments.http import errors
from deployments.http.fast_route import SingleTransactionRoute, serving_replica
from deployments.http.schemas import TransactionIn

VALID = {
    "transaction_id": "tx-1",
    "user_id": "card-1",
    "terminal_id": "term-1",
    "amount": 12.5,
    "timestamp": "2018-06-01T10:00:00",
}


class Handler:
    """Answers like the ingress: conflicts and outages for marked ids, else a decision."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, tx: TransactionIn, include_features: bool = False) -> Response:
        self.calls.append(tx.transaction_id)
        if tx.transaction_id == "conflict":
            raise TransactionConflict([tx.transaction_id])
        if tx.transaction_id == "down":
            raise Unavailable("state_store_unavailable", retry_after_s=2)
        body = {"transaction_id": tx.transaction_id, "features": include_features}
        return Response(orjson.dumps(body), media_type="application/json")

    async def score_single(  # the `RouteTarget`
        self, tx: TransactionIn, include_features: bool = False, deadline_ms: str | None = None
    ) -> Response:
        return await self(tx, include_features)


def make_app(handler: Handler, fast: bool) -> tuple[FastAPI, list[str]]:
    app = FastAPI()
    errors.install(app)
    routed: list[str] = []
    if fast:
        app.add_middleware(SingleTransactionRoute, find_target=lambda: handler)

    @app.post("/v1/transactions")
    async def score_one(tx: TransactionIn, include_features: bool = Query(False)) -> Response:
        routed.append(tx.transaction_id)
        return await handler(tx, include_features)

    return app, routed


def corpus() -> list[tuple[str, dict]]:
    def with_(**kw: object) -> bytes:
        return orjson.dumps({**VALID, **kw})

    json_ = {"content-type": "application/json"}
    return [
        ("/v1/transactions", {"content": with_(), "headers": json_}),
        ("/v1/transactions", {"content": with_(transaction_id=7), "headers": json_}),
        ("/v1/transactions", {"content": with_(timestamp=1_528_000_000), "headers": json_}),
        (
            "/v1/transactions",
            {"content": with_(), "headers": {"content-type": "application/json; charset=utf-8"}},
        ),
        ("/v1/transactions?include_features=true", {"content": with_(), "headers": json_}),
        ("/v1/transactions", {"content": with_(amount=-3), "headers": json_}),
        ("/v1/transactions", {"content": with_(amount="12.5"), "headers": json_}),
        ("/v1/transactions", {"content": with_(user_id="4111 1111"), "headers": json_}),
        ("/v1/transactions", {"content": with_(extra=1), "headers": json_}),
        ("/v1/transactions", {"content": b'{"amount": NaN}', "headers": json_}),
        ("/v1/transactions", {"content": b"not json", "headers": json_}),
        ("/v1/transactions", {"content": b"[1, 2]", "headers": json_}),
        ("/v1/transactions", {"content": b"", "headers": json_}),
        ("/v1/transactions", {"content": with_(), "headers": {"content-type": "text/plain"}}),
        ("/v1/transactions", {"content": with_(), "headers": {}}),
        ("/v1/transactions", {"content": with_(transaction_id="conflict"), "headers": json_}),
        ("/v1/transactions", {"content": with_(transaction_id="down"), "headers": json_}),
    ]


@pytest.mark.parametrize("i", range(len(corpus())))
def test_same_answer_with_and_without_the_fast_route(i: int) -> None:
    path, kwargs = corpus()[i]
    plain_app, _ = make_app(Handler(), fast=False)
    fast_app, _ = make_app(Handler(), fast=True)
    expected = TestClient(plain_app).post(path, **kwargs)
    got = TestClient(fast_app).post(path, **kwargs)
    assert (got.status_code, got.content) == (expected.status_code, expected.content)
    for header in ("content-type", "content-length", "retry-after"):
        assert got.headers.get(header) == expected.headers.get(header)


def test_only_plain_valid_requests_skip_fastapi() -> None:
    handler = Handler()
    app, routed = make_app(handler, fast=True)
    client = TestClient(app)
    client.post("/v1/transactions", json=VALID)
    client.post("/v1/transactions?include_features=true", json={**VALID, "transaction_id": "q"})
    client.post("/v1/transactions", json={**VALID, "amount": -1})
    assert handler.calls == ["tx-1", "q"]  # the refused one reached no handler
    assert routed == ["q"]  # only the query-string request went through FastAPI


def test_outside_serve_no_replica_is_found_and_fastapi_answers() -> None:
    """`serving_replica` names the Serve replica of this process; outside Serve there is
    none, and the layer hands every request to the app."""
    assert serving_replica() is None
    app = FastAPI()
    routed: list[str] = []

    @app.post("/v1/transactions")
    async def score_one(tx: TransactionIn) -> dict[str, str]:
        routed.append(tx.transaction_id)
        return {"ok": tx.transaction_id}

    app.add_middleware(SingleTransactionRoute, find_target=serving_replica)
    assert TestClient(app).post("/v1/transactions", json=VALID).json() == {"ok": "tx-1"}
    assert routed == ["tx-1"]
