"""Every answer's HTTP status, counted in the replica that gives it (`fraud_responses`).

Outermost ASGI layer, so refusals by the access check, the size limit and FastAPI's
validation count too. Counting is a dict increment; the replica's report tick hands the
counts to Ray's metrics (`ServiceMetrics.flush`), so no metrics call sits on the answer path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ResponseCounter:
    def __init__(self, app: ASGIApp, find_target: Callable[[], Any]) -> None:
        """`find_target`: this replica's `Ingress` (Serve copies the app into each replica),
        or None outside one: then nothing is counted."""
        self.app, self.find_target = app, find_target
        self._target: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._target is None:
            self._target = self.find_target()
        if self._target is None:
            await self.app(scope, receive, send)
            return
        count = self._target.metrics.response

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                count(int(message["status"]))
            await send(message)

        await self.app(scope, receive, counted)
