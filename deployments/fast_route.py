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
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.responses import Response

from deployments.schemas import TransactionIn

PATH = "/v1/transactions"
Handler = Callable[[TransactionIn], Awaitable[Response]]
Render = Callable[[Exception], Response | None]


class RouteBinding:
    """Where the layer finds the replica's handler: Starlette builds middleware lazily, and
    the handler belongs to the Serve replica, which exists only after the app does."""

    def __init__(self) -> None:
        self.handler: Handler | None = None
        self.render: Render = lambda _: None

    def bind(self, handler: Handler, render: Render) -> None:
        """`render` turns the app's own exceptions (conflict, unavailable) into its answers."""
        self.handler, self.render = handler, render


def _is_json(scope: dict[str, Any]) -> bool:
    for name, value in scope.get("headers") or ():
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


class SingleTransactionRoute:
    def __init__(self, app: Any, binding: RouteBinding) -> None:
        self.app, self.binding = app, binding

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        handler = self.binding.handler
        if (
            handler is None
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
        try:
            response = await handler(tx)
        except Exception as e:
            rendered = self.binding.render(e)
            if rendered is None:
                raise
            response = rendered
        await response(scope, receive, send)


def _replay(body: bytes, receive: Any) -> Callable[[], Awaitable[dict[str, Any]]]:
    """A `receive` that gives the app the body already read, then the connection's own."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
