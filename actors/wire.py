"""A direct socket from shard clients to a shard actor: the hot path's data plane.

Why: one Ray actor call costs ~2.3 ms of wall time and CPU on a 2-core node, a loopback TCP
round trip ~0.13 ms (docs/architecture.md, "Shard transport"). Ray stays the control plane:
it places, names and restarts the shard actors and hands out each one's address and token
(`open_wire`); the socket only carries `process` calls and their answers.

Frames are length-prefixed; a frame holds NumPy arrays and lists of id digests in a fixed
binary layout (no pickle: nothing that arrives on the socket is ever executed). A client
proves it got the address through Ray by sending the shard's random token first.
Answers come back in request order on each connection, so one connection per client and
shard keeps the order in which a client sent a card's transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import math
import secrets
import socket
import ssl
import struct
import threading
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from actors.actor.layout import ShardMoved
from actors.events import Item
from actors.store.backends import StoreUnavailable
from actors.store.records import DTYPES

Handler = Callable[[list[Item]], list[Item]]  # a batch's items in, its answer's out

_LEN = struct.Struct("<I")
_ARRAY_HEAD = struct.Struct("<cB")  # tag, len(dtype.str)
_STRS_HEAD = struct.Struct("<cII")  # tag, count, bytes
MAX_FRAME = 256 << 20
TOKEN_BYTES = 16
HANDSHAKE_S = 10.0
CALL_TIMEOUT_S = 5.0  # a call with no answer this long breaks its connection
PEER_TIMEOUT_S = 10.0  # a shard drops a client connection that stays silent this long
OK, STORE_UNAVAILABLE, FAILED, MOVED = 0, 1, 2, 3
_SHAPES = [struct.Struct(f"<{n}Q") for n in range(33)]  # NumPy's most dimensions: 32


class WireClosed(ConnectionError):
    """The connection to a shard broke; a call on it may or may not have run."""


class WireRemoteError(RuntimeError):
    """The shard answered with an error (`status` says which)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# -- codec --------------------------------------------------------------------------------
def encode(status: int, items: Sequence[Item]) -> bytes:
    """One frame: length, status byte, item count, then each item."""
    parts: list[bytes] = [bytes((status, len(items)))]
    for item in items:
        if isinstance(item, np.ndarray):
            arr = np.ascontiguousarray(item)
            dt = arr.dtype.str.encode()
            parts += [_ARRAY_HEAD.pack(b"A", len(dt)), dt, bytes((arr.ndim,))]
            parts.append(_SHAPES[arr.ndim].pack(*arr.shape))
            parts.append(arr.tobytes())
        else:
            joined = "\x00".join(item).encode()
            parts += [_STRS_HEAD.pack(b"S", len(item), len(joined)), joined]
    body = b"".join(parts)
    return _LEN.pack(len(body)) + body


_DTYPE_NAMES = {name.encode(): dtype for name, dtype in DTYPES.items()}
_A, _S = ord("A"), ord("S")


def decode(body: bytes | bytearray | memoryview) -> tuple[int, list[Item]]:
    """(status, items) from a frame's body (its length prefix already read). An array's
    dtype must be on the stores' allow list (`actors.store.records.DTYPES`); its text is
    looked up, never parsed."""
    view = memoryview(body)
    status, count = view[0], view[1]
    pos, items = 2, list[Item]()
    for _ in range(count):
        tag = view[pos]
        if tag == _A:
            _, dlen = _ARRAY_HEAD.unpack_from(view, pos)
            pos += _ARRAY_HEAD.size
            dtype = _DTYPE_NAMES.get(bytes(view[pos : pos + dlen]))
            if dtype is None:
                raise ValueError("an array of a dtype the wire does not carry")
            pos += dlen
            ndim = view[pos]
            if ndim >= len(_SHAPES):
                raise ValueError("an array of more dimensions than NumPy has")
            pos += 1
            shape = _SHAPES[ndim].unpack_from(view, pos)
            pos += 8 * ndim
            nbytes = math.prod(shape) * dtype.itemsize
            items.append(np.frombuffer(view[pos : pos + nbytes], dtype).reshape(shape))
            pos += nbytes
        elif tag == _S:
            _, n, nbytes = _STRS_HEAD.unpack_from(view, pos)
            pos += _STRS_HEAD.size
            text = bytes(view[pos : pos + nbytes]).decode()
            items.append(text.split("\x00") if n else [])
            pos += nbytes
        else:
            raise ValueError(f"unknown item tag {bytes([tag])!r}")
    return status, items


def keep_alive(sock: socket.socket, timeout_s: float) -> None:
    """Notice a silent peer within about `timeout_s`, not TCP's defaults (hours for an idle
    connection, ~15 minutes for unacknowledged data to a blackholed host): keepalive probes
    an idle connection, and TCP_USER_TIMEOUT aborts one whose sent data stays unacknowledged."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    probes = max(1, int(timeout_s / 2))
    if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; elsewhere the system's keepalive timing
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, int(timeout_s / 2)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, probes)
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(timeout_s * 1000))


# -- server (inside the shard actor) -----------------------------------------------------------
def _recv_exact(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise WireClosed("peer closed")
        got += k
    return buf


class WireServer:
    """Serves `handler(items)` on a TCP port, one thread per client connection. The
    handler serialises itself (a shard applies one request at a time under its own lock,
    whether it came over the socket or as a Ray call)."""

    def __init__(self, handler: Handler, host: str, tls: ssl.SSLContext | None = None) -> None:
        """`tls`: a server context (`actors.tls`); then every client must speak TLS."""
        self.handler, self.tls = handler, tls
        self.token = secrets.token_bytes(TOKEN_BYTES)
        self._listener = socket.create_server((host, 0))
        self.address = (host, self._listener.getsockname()[1])
        threading.Thread(target=self._accept, name="wire-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            keep_alive(conn, PEER_TIMEOUT_S)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError, WireClosed):
            if self.tls is not None:  # a plain client fails the handshake and is dropped
                conn.settimeout(HANDSHAKE_S)
                conn = self.tls.wrap_socket(conn, server_side=True)
                conn.settimeout(None)
            if not hmac.compare_digest(bytes(_recv_exact(conn, TOKEN_BYTES)), self.token):
                return
            while True:
                (size,) = _LEN.unpack(_recv_exact(conn, _LEN.size))
                if size > MAX_FRAME:
                    return
                conn.sendall(self._answer(_recv_exact(conn, size)))

    def _answer(self, body: bytearray) -> bytes:
        try:
            _, items = decode(body)
            return encode(OK, self.handler(items))
        except ShardMoved as e:  # the errors clients act on: 503, retry later
            return encode(MOVED, [[str(e)]])
        except StoreUnavailable as e:
            return encode(STORE_UNAVAILABLE, [[str(e)]])
        except Exception as e:  # the client raises it; the connection stays usable
            return encode(FAILED, [[f"{type(e).__name__}: {e}"]])

    def close(self) -> None:
        self._listener.close()


# -- client (in the ingress and stream replicas) -----------------------------------------------
class WireConnection:
    """One asyncio connection to one shard; calls are pipelined and answered in order. A
    call unanswered for `timeout_s` breaks the connection (every waiting call fails with
    `WireClosed`, and callers retry on a new one): a silent shard costs that, never more."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        timeout_s: float = CALL_TIMEOUT_S,
    ) -> None:
        self._reader, self._writer, self.timeout_s = reader, writer, timeout_s
        self._waiting: deque[tuple[float, asyncio.Future[list[Item]]]] = deque()
        self.closed = False
        self._failure: WireClosed | None = None
        self._watch: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._read_answers())

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        token: bytes,
        tls: ssl.SSLContext | None = None,
        timeout_s: float = CALL_TIMEOUT_S,
    ) -> WireConnection:
        """`tls`: a client context (`actors.tls`), for a shard that serves TLS."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=tls), timeout_s
            )
        except TimeoutError as e:
            raise WireClosed(f"no connection in {timeout_s:g} s") from e
        sock = writer.get_extra_info("socket")
        if sock is not None:
            keep_alive(sock, timeout_s)
        writer.write(token)
        return cls(reader, writer, timeout_s)

    async def call(self, items: Sequence[Item]) -> list[Item]:
        future = self.send(items)
        try:
            await self._writer.drain()
        except OSError as e:
            future.cancel()  # no answer will come; the reader skips futures already done
            raise WireClosed(str(e) or type(e).__name__) from e
        return await future

    def send(self, items: Sequence[Item]) -> asyncio.Future[list[Item]]:
        """Write the call's frame now (ahead of any later call on this connection) and
        return the future of its answer."""
        if self.closed:
            raise WireClosed("connection closed")
        future: asyncio.Future[list[Item]] = self._loop.create_future()
        # appended and written with no await between: in order
        self._waiting.append((self._loop.time(), future))
        self._writer.write(encode(OK, items))
        if self._watch is None:
            self._watch = self._loop.call_later(self.timeout_s, self._check)
        return future

    def _check(self) -> None:
        """The watchdog: one timer per connection while calls wait, not one per call."""
        self._watch = None
        if self.closed or not self._waiting:
            return
        sent, _ = self._waiting[0]
        late = self._loop.time() - sent - self.timeout_s
        if late >= 0:
            self._failure = WireClosed(f"no answer in {self.timeout_s:g} s")
            self._task.cancel()
        else:
            self._watch = self._loop.call_later(-late, self._check)

    async def _read_answers(self) -> None:
        error: BaseException = WireClosed("connection closed")
        try:
            while True:
                (size,) = _LEN.unpack(await self._reader.readexactly(_LEN.size))
                status, items = decode(await self._reader.readexactly(size))
                _, future = self._waiting.popleft()
                if future.done():
                    continue
                if status == OK:
                    future.set_result(items)
                else:
                    future.set_exception(WireRemoteError(status, str(items[0][0])))
        except (OSError, EOFError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
            error = WireClosed(str(e) or type(e).__name__)  # broken, or a frame out of step
        except asyncio.CancelledError:
            pass
        finally:
            self.closed = True
            self._writer.close()
            if self._watch is not None:
                self._watch.cancel()
            error = self._failure or error
            while self._waiting:
                _, future = self._waiting.popleft()
                if not future.done():
                    future.set_exception(error)

    def close(self) -> None:
        self._task.cancel()
