"""POST /v1/transactions answered before FastAPI's per-request machinery (pure ASGI).

The single-transaction route is the hot path, and FastAPI's routing, dependency solving and
request wrappers cost more CPU per request than the scoring work behind them (py-spy on the
ingress at c=64). This layer takes the common case only: a JSON body that validates as a
`TransactionIn`, with no query string. It parses the body the way FastAPI does (JSON, then
`TransactionIn` in Python mode) and answers with the same handler and the same error bodies.
Anything else (another route, a query parameter, another content type, a body that does
not parse or validate) goes to the app unchanged, with the body it has read, so every 4xx
keeps the app's exact answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from pydantic import ValidationError
from starlette.responses import Response

from actors.errors import ServiceError
from deployments.http import errors
from deployments.http.deadline import HEADER
from deployments.http.schemas import TransactionIn
from deployments.scoring import stages

PATH = "/v1/transactions"


class RouteTarget(Protocol):
    """What the layer calls: the replica's own handler."""

    async def score_single(
        self, tx: TransactionIn, include_features: bool = False, deadline_ms: str | None = None
    ) -> Response: ...


DEADLINE_HEADER = HEADER.encode()


def serving_replica() -> RouteTarget | None:
    """The Serve replica this process runs (its `Ingress` instance), or None outside one.

    Serve copies the app (middleware options included) into each replica, so a handler
    cannot be handed to the middleware by reference; each copy finds its own replica."""
    from ray import serve
    from ray.serve.exceptions import RayServeException

    try:
        target = serve.get_replica_context().servable_object
    except RayServeException:
        return None
    return target if hasattr(target, "score_single") else None


def _is_json(scope: dict[str, Any]) -> bool:
    for name, value in scope.get("headers") or ():
        if name == b"content-type":
            return bool(value.split(b";", 1)[0].strip().lower() == b"application/json")
    return False


class SingleTransactionRoute:
    """ASGI middleware; `find_target` says who answers (`serving_replica` in the service),
    asked until it names one, which is then kept for this app's life."""

    def __init__(self, app: Any, find_target: Callable[[], RouteTarget | None]) -> None:
        self.app, self.find_target = app, find_target
        self.target: RouteTarget | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.target is None and scope["type"] == "http":
            self.target = self.find_target()
        target = self.target
        if (
            target is None
            or scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or scope.get("query_string")
            or not _is_json(scope)
        ):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left (or a guard stopped it)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            tx = TransactionIn.model_validate(orjson.loads(body))
        except (orjson.JSONDecodeError, ValidationError):
            await self.app(scope, _replay(body, receive), send)
            return
        stages.mark("parse")
        asked = next((v for k, v in scope["headers"] if k == DEADLINE_HEADER), None)
        try:
            deadline = None if asked is None else asked.decode("latin-1")
            response: Response = await target.score_single(tx, False, deadline)
        except ServiceError as e:  # as the app's own handler answers it
            response = errors.render(e)
        await response(scope, receive, send)


def _replay(body: bytes, receive: Any) -> Callable[[], Awaitable[dict[str, Any]]]:
    """A `receive` that gives the app the body already read, then the connection's own."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return dict(await receive())
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
