"""The access guard in front of every route (pure ASGI): keys, scopes, rate limits.

`deployments.http.access.Access` decides; this layer reads the request's bearer token (or,
on the live stream only, `?access_token=`), answers 401/403/429 itself, and tells the app
which key the request came with (`request.state.key_id`, for the audit log). Pure ASGI
rather than Starlette's `BaseHTTPMiddleware`: that one runs each request in an anyio task
group and costs more CPU per request than scoring a transaction (py-spy on the ingress).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import orjson

from deployments.http.access import Access
from deployments.http.asgi import send_json
from deployments.http.routes import RouteFinder, ambiguous, route_path

_AMBIGUOUS = orjson.dumps(
    {"detail": "path: an encoded '/' or '\\', or a segment that decodes to '.' or '..', is "
     "refused"}
)  # fmt: skip


def serving_access() -> Access | None:
    """The `Access` of the Serve replica this process runs, or None outside one (Serve
    copies the app into each replica, so each copy finds its own)."""
    from deployments.http.fast_route import serving_replica

    replica = serving_replica()
    access = getattr(replica, "access", None)
    return access if isinstance(access, Access) else None


class AccessGuard:
    """ASGI middleware; `find_access` is asked until it names the replica's `Access`.
    Requests that arrive before one is found are refused (503), never let through. What is
    authorised is the route `router` will serve the request by (`deployments.http.routes`)."""

    def __init__(self, app: Any, find_access: Callable[[], Access | None], router: Any) -> None:
        self.app, self.find_access = app, find_access
        self.routes = RouteFinder(router)
        self.access: Access | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.access is None:
            self.access = self.find_access()
            if self.access is None:
                await send_json(send, 503, b'{"detail":"starting"}', ((b"retry-after", b"1"),))
                return
        path = route_path(scope)
        if ambiguous(path):
            await send_json(send, 400, _AMBIGUOUS)
            return
        bearer = None
        for name, value in scope.get("headers") or ():
            if name == b"authorization":
                kind, _, token = value.decode("latin-1").partition(" ")
                bearer = token.strip() if kind.lower() == "bearer" else ""
                break
        query = None
        if scope.get("query_string"):
            tokens = parse_qs(scope["query_string"].decode("latin-1")).get("access_token")
            query = tokens[0] if tokens else None
        route = self.routes.find(scope["method"], path)
        verdict = self.access.check(scope["method"], route, bearer, query)
        if verdict.status == 200:
            state = scope.setdefault("state", {})
            state["key_id"], state["access_expires"] = verdict.key_id, verdict.expires
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = []
        if verdict.status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        if verdict.retry_after is not None:
            headers.append((b"retry-after", str(verdict.retry_after).encode()))
        body = orjson.dumps({"detail": verdict.detail})
        await send_json(send, verdict.status, body, tuple(headers))
