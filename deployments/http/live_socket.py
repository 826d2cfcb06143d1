"""The live channel over a WebSocket: the console's live snapshots, pushed, sampled for a slow
reader.

The browser opens `/v1/live/ws` and sends one message first: `{"token": <a session token
from POST /v1/session, or null when keys are off>}` (a token in a message, never a key and
never in the URL). Access is checked then and again every tick, so a revoked key or an
expired token ends the channel (close code 4401). Each tick makes one snapshot and leaves
it in a one-slot mailbox; a separate task sends what the mailbox holds. A reader slower
than the ticks gets the newest snapshot when it is ready again and is told how many it
missed (`skipped`), so a slow browser is sampled and never holds the service up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from deployments.http.access import TOKEN_PREFIX

AUTH_TIMEOUT_S = 5.0
CLOSE_UNAUTHORISED = 4401  # the 4000-4999 range is the application's (RFC 6455)
ROUTE = "/v1/live/ws"


class Checker(Protocol):
    """What the channel asks (`deployments.http.access.Access`)."""

    def check(
        self, method: str, route: str | None, bearer: str | None, query_token: str | None
    ) -> Any: ...

    def still_allowed(self, key_id: str | None, expires: float | None) -> bool: ...


class Mailbox:
    """One slot: a new item replaces one not yet taken, and the replaced are counted."""

    def __init__(self) -> None:
        self._item: Any = None
        self._full = asyncio.Event()
        self.skipped = 0

    def put(self, item: Any) -> None:
        if self._full.is_set():
            self.skipped += 1
        self._item = item
        self._full.set()

    async def take(self) -> tuple[Any, int]:
        """The newest item, and how many were replaced since the last take."""
        await self._full.wait()
        self._full.clear()
        item, skipped = self._item, self.skipped
        self._item, self.skipped = None, 0
        return item, skipped


class LiveChannel:
    """One connection: authenticate, then push a snapshot every `interval_s`."""

    def __init__(
        self,
        snapshot: Callable[[], Awaitable[dict[str, Any]]],
        access: Checker | None,
        interval_s: float = 1.0,
        max_seconds: float = 3600.0,
    ) -> None:
        self.snapshot, self.access = snapshot, access
        self.interval_s, self.max_seconds = interval_s, max_seconds

    async def run(self, ws: WebSocket) -> None:
        await ws.accept()
        allowed = await self._authenticate(ws)
        if allowed is None:
            await ws.close(CLOSE_UNAUTHORISED, "a session token is needed")
            return
        key_id, expires = allowed
        box = Mailbox()
        sender = asyncio.ensure_future(self._send(ws, box))
        deadline = time.monotonic() + self.max_seconds
        seq, code = 0, 1000
        try:
            while not sender.done() and time.monotonic() < deadline:
                if self.access is not None and not self.access.still_allowed(key_id, expires):
                    box.put({"type": "end", "detail": "access ended"})
                    code = CLOSE_UNAUTHORISED
                    break
                try:
                    data: dict[str, Any] = {"type": "live", "data": await self.snapshot()}
                except Exception as e:  # keep the channel: the next tick may work
                    data = {"type": "error", "detail": type(e).__name__}
                seq += 1
                box.put({**data, "seq": seq})
                await asyncio.sleep(self.interval_s)
        finally:
            if code != 1000:  # the "end" message goes before the close
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(sender), 1.0)
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender
            with contextlib.suppress(Exception):
                await ws.close(code)

    async def _authenticate(self, ws: WebSocket) -> tuple[str | None, float | None] | None:
        try:
            first = await asyncio.wait_for(ws.receive_text(), AUTH_TIMEOUT_S)
            token = orjson.loads(first).get("token")
        except (TimeoutError, WebSocketDisconnect, ValueError, AttributeError):
            return None
        if self.access is None:
            return None, None
        if token is not None and not isinstance(token, str):
            return None
        if token and not token.startswith(TOKEN_PREFIX):
            return None  # a key never travels on this channel: a session token does
        verdict = self.access.check("GET", ROUTE, token or None, None)
        if verdict.status != 200:
            return None
        return verdict.key_id, verdict.expires

    async def _send(self, ws: WebSocket, box: Mailbox) -> None:
        while True:
            item, skipped = await box.take()
            body = orjson.dumps({**item, "skipped": skipped}, option=orjson.OPT_SERIALIZE_NUMPY)
            await ws.send_text(body.decode())
            if item.get("type") == "end":
                return
