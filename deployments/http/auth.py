"""The API-key guard in front of every /v1 route (pure ASGI).

With FRAUD_API_KEY set, every /v1 route needs `Authorization: Bearer <key>`; the live event
stream, which browsers open without headers, may pass `?access_token=` instead. Pure ASGI
rather than Starlette's `BaseHTTPMiddleware`: that one runs each request in an anyio task
group and costs more CPU per request than scoring a transaction (py-spy on the ingress).
"""

from __future__ import annotations

import hmac
import os
from typing import Any
from urllib.parse import parse_qs

from deployments.http.asgi import send_json

API_KEY_ENV = "FRAUD_API_KEY"
LIVE_STREAM_PATH = "/v1/live/stream"
_DENIED = b'{"detail":"missing or wrong API key"}'


class ApiKeyGuard:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        key = os.environ.get(API_KEY_ENV)  # read per request: set or rotated without a restart
        path = scope.get("path", "")
        if not key or scope["type"] != "http" or not path.startswith("/v1"):
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        if path == LIVE_STREAM_PATH:
            token = parse_qs(scope.get("query_string", b"").decode()).get("access_token")
            if token:
                given = f"Bearer {token[0]}".encode()
        if hmac.compare_digest(given, f"Bearer {key}".encode()):
            await self.app(scope, receive, send)
            return
        await send_json(send, 401, _DENIED, ((b"www-authenticate", b"Bearer"),))
