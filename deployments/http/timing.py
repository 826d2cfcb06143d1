"""Stage timings for a request that asks (`x-fraud-timing: 1`): a `Server-Timing` header.

Outermost ASGI layer, so the first stage includes the access check and the body's parsing;
the stages themselves are marked along the path (`deployments.scoring.stages`).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.scoring import stages

HEADER = b"x-fraud-timing"


class StageTiming:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not any(k == HEADER for k, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        marks, token = stages.begin()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                stages.mark("respond")
                timing = (b"server-timing", stages.server_timing(marks))
                message = {**message, "headers": [*message.get("headers", []), timing]}
            await send(message)

        try:
            await self.app(scope, receive, timed)
        finally:
            stages.end(token)
