"""What the pure-ASGI guards (body size, API key) share: answering without the app."""

from __future__ import annotations

from typing import Any


async def send_json(
    send: Any, status: int, body: bytes, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """A complete JSON response, straight on the ASGI `send` channel."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
