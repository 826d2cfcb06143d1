"""The replay client sends a request again, with the same body, while the service answers
503 or 429 or the connection fails, within its budget; past it the request is an error."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import httpx
import orjson
import pandas as pd
import pytest

from simulator import replay
from simulator.replay import ReplayOptions, replay_stream


def _stream(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "transaction_id": [f"t{i}" for i in range(n)], "user_id": [f"c{i % 3}" for i in range(n)],
        "terminal_id": ["T"] * n, "amount": [10.0] * n, "is_fraud": [0] * n,
        "timestamp": pd.date_range("2018-06-01", periods=n, freq="min"),
    })  # fmt: skip


class Service:
    """Answers the first `refuse` requests with `status` (or a dropped connection)."""

    def __init__(self, refuse: int, status: int | None) -> None:
        self.refuse, self.status = refuse, status
        self.bodies: list[bytes] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.content)
        if len(self.bodies) <= self.refuse:
            if self.status is None:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(self.status, headers={"retry-after": "0"}, json={})
        txs = orjson.loads(request.content)["transactions"]
        results = [{"score": 0.1, "decision": "LEGIT", "model_version": "m"} for _ in txs]
        return httpx.Response(200, json={"results": results})


def _replay(monkeypatch: pytest.MonkeyPatch, service: Service, **opts: Any) -> Any:
    transport = httpx.MockTransport(service)
    monkeypatch.setattr(
        replay.httpx, "AsyncClient", functools.partial(httpx.AsyncClient, transport=transport)
    )
    options = ReplayOptions(url="http://service", concurrency=1, batch=10, labels=False, **opts)
    return asyncio.run(replay_stream(_stream(20), options))


@pytest.mark.parametrize("status", [503, 429, None])
def test_a_refused_request_is_sent_again_with_the_same_body(
    monkeypatch: pytest.MonkeyPatch, status: int | None
) -> None:
    service = Service(refuse=2, status=status)
    result = _replay(monkeypatch, service)
    assert result.errors == {} and result.retries == 2 and len(result.rows) == 20
    assert service.bodies[0] == service.bodies[1] == service.bodies[2]  # the same request


def test_past_its_budget_a_request_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _replay(monkeypatch, Service(refuse=10**6, status=503), retry_for_s=0.3)
    assert result.errors == {"http_503": 20} and result.retries >= 2 and result.rows == []
