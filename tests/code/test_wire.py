"""The shard socket (`actors.wire`): same answers as a direct call, in order, guarded.

No Ray: a real `UserShard` behind a `WireServer` on loopback, and a twin shard called
directly; what Ray adds (finding the address, restarting) is covered by the service tests.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors.actor.shards import UserShard
from actors.events import CardEvents
from actors.store.backends import MemoryStore, SqliteStore, StoreUnavailable
from actors.tls import WireTlsConfig
from actors.wire import (
    FAILED,
    OK,
    STORE_UNAVAILABLE,
    TOKEN_BYTES,
    WireClosed,
    WireConnection,
    WireRemoteError,
    WireServer,
    decode,
    encode,
)
from features.ids import OFFLINE


def test_codec_round_trip_keeps_dtypes_shapes_and_ids() -> None:
    items = [
        np.arange(6, dtype=np.float64).reshape(2, 3),
        np.array([-1, 2**40], np.int64),
        np.zeros(0, np.int8),
        ["a", "b-c", ""],
        [],
    ]
    status, back = decode(encode(FAILED, items)[4:])
    assert status == FAILED
    for sent, got in zip(items, back, strict=True):
        if isinstance(sent, np.ndarray):
            assert isinstance(got, np.ndarray)
            assert got.dtype == sent.dtype and got.shape == sent.shape
            np.testing.assert_array_equal(got, sent)
        else:
            assert got == sent


def test_codec_refuses_dtypes_off_the_list_and_unknown_tags() -> None:
    frame = bytearray(encode(OK, [np.array([1.0])])[4:])
    frame[2:3] = b"X"
    with pytest.raises(ValueError, match="tag"):
        decode(frame)
    for odd in (
        np.array([{"a": 1}], dtype=object),
        np.array(["text"]),
        np.array(["2018-06-01"], dtype="datetime64[D]"),
    ):
        with pytest.raises(ValueError, match="dtype"):
            decode(encode(OK, [odd])[4:])
    deep = bytearray(encode(OK, [np.zeros(1)])[4:])
    deep[2 + 2 + len(np.dtype(float).str)] = 40  # the dimension count's byte
    with pytest.raises(ValueError, match="dimensions"):
        decode(deep)


def _calls(n: int, rows: int = 3) -> list[CardEvents]:
    """`UserShard.process` batches: cards seen again and again, one retry per call."""
    out = []
    for c in range(n):
        txs = [OFFLINE.keys(f"tx{c}-{r}")[0] for r in range(rows)]
        txs[-1] = txs[0]  # a retry inside the request
        out.append(CardEvents.without_writes(
            txs,
            np.array([c, c + 1, c][:rows], np.int64),
            [OFFLINE.keys(f"card{(c + r) % 4}")[0] for r in range(rows)],
            np.full(rows, 1_600_000_000_000 + 60_000 * c, np.int64),
            np.linspace(5, 50, rows) + c,
            np.arange(rows, dtype=np.int32),
        ))  # fmt: skip
    return out


async def _over_wire(server: WireServer, calls: list[CardEvents]) -> list[list[Any]]:
    conn = await WireConnection.open(*server.address, server.token)
    try:  # all sent at once: pipelined on one connection, answered in order
        return list(await asyncio.gather(*(conn.call(c.items()) for c in calls)))
    finally:
        conn.close()


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_answers_over_the_socket_equal_direct_calls_in_order(backend: str, tmp_path: Path) -> None:
    """The socket's threads write the journal too: SQLite must accept that (it refuses a
    connection used from another thread unless told)."""
    store = SqliteStore(tmp_path) if backend == "sqlite" else MemoryStore()
    over_socket, direct = UserShard(0, 1, {}, store=store), UserShard(0, 1, {})
    server = WireServer(over_socket.serve, "127.0.0.1")
    calls = _calls(40)
    try:
        got = asyncio.run(_over_wire(server, calls))
    finally:
        server.close()
    for call, (feats, status) in zip(calls, got, strict=True):
        want = direct.process(call)
        want_feats, want_status = want.features, want.status
        np.testing.assert_array_equal(feats, want_feats)
        np.testing.assert_array_equal(status, want_status)
    assert over_socket.transactions == direct.transactions == 40 * 2
    assert over_socket.dedup.hits == direct.dedup.hits
    restarted = UserShard(0, 1, {}, store=store)  # what was answered was journaled
    assert restarted.transactions == 40 * 2 and restarted.replayed == 40


def test_a_wrong_token_is_disconnected_before_anything_is_applied() -> None:
    shard = UserShard(0, 1, {})
    server = WireServer(shard.serve, "127.0.0.1")
    try:
        with socket.create_connection(server.address, timeout=5) as s:
            s.sendall(b"x" * TOKEN_BYTES + encode(OK, _calls(1)[0].items()))
            try:
                answer = s.recv(1)
            except ConnectionResetError:  # closed with our frame unread
                answer = b""
            assert answer == b""  # closed without an answer
    finally:
        server.close()
    assert shard.transactions == 0


class _DownStore(MemoryStore):
    def append(self, name: str, seq: int, record: bytes, epoch: int | None = None) -> None:
        raise StoreUnavailable("disk full")


def test_errors_come_back_as_statuses_and_the_connection_stays_usable() -> None:
    shard = UserShard(0, 1, {}, store=_DownStore())
    server = WireServer(shard.serve, "127.0.0.1")

    async def go() -> tuple[int, int, int]:
        conn = await WireConnection.open(*server.address, server.token)
        with pytest.raises(WireRemoteError) as down:
            await conn.call(_calls(1)[0].items())
        with pytest.raises(WireRemoteError) as bad:
            await conn.call([np.zeros(2)])  # wrong arguments: the handler raises
        server.close()
        return down.value.status, bad.value.status, len(conn._waiting)

    try:
        down, bad, waiting = asyncio.run(go())
    finally:
        server.close()
    assert (down, bad, waiting) == (STORE_UNAVAILABLE, FAILED, 0)
    assert shard.transactions == 0


def test_a_broken_connection_fails_waiting_calls_instead_of_hanging() -> None:
    async def go() -> None:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readexactly(TOKEN_BYTES + 4)
            writer.close()

        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = await WireConnection.open("127.0.0.1", port, b"t" * TOKEN_BYTES)
        with pytest.raises(WireClosed):
            await asyncio.wait_for(conn.call([np.zeros(1)]), 5)
        assert conn.closed
        with pytest.raises(WireClosed):
            await conn.call([np.zeros(1)])
        server.close()

    asyncio.run(go())


def _tls(tmp_path: Path, name: str) -> WireTlsConfig:
    """A private CA and one node certificate from it, as files (`trustme`)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    paths = {k: tmp_path / f"{name}-{k}.pem" for k in ("cert", "key", "ca")}
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    ca.cert_pem.write_to_path(str(paths["ca"]))
    return WireTlsConfig(
        certfile=str(paths["cert"]), keyfile=str(paths["key"]), cafile=str(paths["ca"])
    )


def test_tls_between_shard_and_client_and_nothing_without_it(tmp_path: Path) -> None:
    ours, theirs = _tls(tmp_path, "ours"), _tls(tmp_path, "theirs")
    shard = UserShard(0, 1, {})
    server = WireServer(shard.serve, "127.0.0.1", ours.server_context(tmp_path))
    calls = _calls(5)

    async def go(tls: Any, n: int = len(calls)) -> list[list[Any]]:
        conn = await WireConnection.open(*server.address, server.token, tls)
        try:
            return list(await asyncio.gather(*(conn.call(c.items()) for c in calls[:n])))
        finally:
            conn.close()

    try:
        answers = asyncio.run(go(ours.client_context(tmp_path)))
        assert len(answers) == 5 and shard.transactions == 5 * 2
        # A plain client (token and all) and a client whose certificate another CA signed
        # are both dropped before anything is applied.
        for tls in (None, theirs.client_context(tmp_path)):
            with pytest.raises((WireClosed, OSError)):
                asyncio.run(asyncio.wait_for(go(tls, 1), 15))
        assert shard.transactions == 5 * 2
    finally:
        server.close()


def test_a_silent_shard_fails_the_call_within_the_timeout() -> None:
    """A peer that takes the call and never answers (a host whose packets are dropped looks
    the same to the caller) breaks the connection after `timeout_s`, not TCP's minutes."""

    async def go() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1 << 16)
            await asyncio.sleep(30)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = await WireConnection.open("127.0.0.1", port, b"t" * TOKEN_BYTES, timeout_s=0.3)
        sock = conn._writer.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 300
        first = conn.send([np.zeros(1)])
        with pytest.raises(WireClosed, match=r"no answer in 0\.3 s"):
            await asyncio.wait_for(conn.call([np.zeros(1)]), 5)
        with pytest.raises(WireClosed, match="no answer"):
            await first  # every call waiting on the connection fails with it
        assert conn.closed
        server.close()

    asyncio.run(go())
