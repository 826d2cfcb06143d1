"""The live channel over a WebSocket: a session token in the first message (never a key),
snapshots pushed in order, access asked again every tick, a slow reader sampled."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from deployments.http import live_socket
from deployments.http.live_socket import CLOSE_UNAUTHORISED, LiveChannel, Mailbox

TOKEN = "fs.a-session-token"


class Access:
    """Lets `TOKEN` in as key k1 while `allowed`; anything else is refused."""

    def __init__(self) -> None:
        self.allowed = True
        self.asked: list[str | None] = []

    def check(self, method: str, route: str | None, bearer: str | None, query: str | None) -> Any:
        self.asked.append(bearer)
        ok = bearer == TOKEN
        return SimpleNamespace(status=200 if ok else 401, key_id="k1", expires=time.time() + 60)

    def still_allowed(self, key_id: str | None, expires: float | None) -> bool:
        return self.allowed and key_id == "k1"


def _client(access: Access) -> TestClient:
    app = FastAPI()
    ticks = {"n": 0}

    async def snapshot() -> dict[str, Any]:
        ticks["n"] += 1
        return {"transactions": ticks["n"]}

    @app.websocket("/v1/live/ws")
    async def live(ws: WebSocket) -> None:
        await LiveChannel(snapshot, access, interval_s=0.01).run(ws)

    return TestClient(app)


def test_a_session_token_opens_the_channel_and_snapshots_come_in_order() -> None:
    access = Access()
    with _client(access).websocket_connect("/v1/live/ws") as ws:
        ws.send_text(orjson.dumps({"token": TOKEN}).decode())
        frames = [orjson.loads(ws.receive_text()) for _ in range(5)]
    assert [f["type"] for f in frames] == ["live"] * 5
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert all("transactions" in f["data"] and f["skipped"] >= 0 for f in frames)
    assert access.asked == [TOKEN]


@pytest.mark.parametrize("first", ['{"token": "sk_live_a_key"}', '{"token": "fs.forged"}', "hi"])
def test_a_key_a_bad_token_or_no_token_message_is_refused(first: str) -> None:
    access = Access()
    with _client(access).websocket_connect("/v1/live/ws") as ws:
        ws.send_text(first)
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == CLOSE_UNAUTHORISED
    assert "sk_live_a_key" not in access.asked  # a key is never even checked here


def test_silence_instead_of_a_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_socket, "AUTH_TIMEOUT_S", 0.1)
    client = _client(Access())
    with (
        client.websocket_connect("/v1/live/ws") as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_text()
    assert closed.value.code == CLOSE_UNAUTHORISED


def test_a_revoked_key_ends_the_channel() -> None:
    access = Access()
    with _client(access).websocket_connect("/v1/live/ws") as ws:
        ws.send_text(orjson.dumps({"token": TOKEN}).decode())
        assert orjson.loads(ws.receive_text())["type"] == "live"
        access.allowed = False
        kinds = []
        with pytest.raises(WebSocketDisconnect) as closed:
            for _ in range(100):
                kinds.append(orjson.loads(ws.receive_text())["type"])
    assert kinds[-1] == "end" and closed.value.code == CLOSE_UNAUTHORISED


def test_a_slow_reader_gets_the_newest_snapshot_and_the_count_it_missed() -> None:
    async def go() -> None:
        box = Mailbox()
        for i in range(5):  # five ticks while the reader was busy: nothing waits for it
            box.put({"seq": i})
        assert await box.take() == ({"seq": 4}, 4)
        box.put({"seq": 5})
        assert await box.take() == ({"seq": 5}, 0)

    asyncio.run(go())
