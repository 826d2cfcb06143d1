"""The shard client of the online service: `ShardClient` over named Ray actors.

It composes one piece per job: `ActorDirectory` (create and find the actors), a transport
(`process` over each shard actor's socket, or as Ray calls), `retry_while_gone` (try again
while an actor restarts), and the desk's typed `DeskClient` with the replica's `DeskOutbox`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

from actors.actor.desk import Desk
from actors.actor.journal import ShardSettings
from actors.actor.layout import ShardMoved
from actors.client.desk import DeskClient, PendingDecisions
from actors.client.directory import ActorDirectory, Kind
from actors.client.outbox import DeskOutbox
from actors.client.protocol import ShardUnavailable
from actors.client.retry import retry_while_gone
from actors.events import (
    CardAnswer,
    CardEvents,
    Columns,
    Item,
    LinkAnswer,
    LinkEvents,
    TerminalAnswer,
    TerminalEvents,
    TerminalWrite,
)
from actors.paths import REPO_ROOT
from actors.store.backends import StoreUnavailable
from actors.wire import (
    CALL_TIMEOUT_S,
    MOVED,
    STORE_UNAVAILABLE,
    WireClosed,
    WireConnection,
    WireRemoteError,
)

P = ParamSpec("P")
R = TypeVar("R")
A = TypeVar("A", bound=Columns)
Transport = Literal["direct", "ray"]
WRITE_LINGER_S = 0.02
_ACTOR_GONE = (ActorDiedError, ActorUnavailableError, RayActorError)


def _gone(e: BaseException) -> bool:
    """A failure that means the actor (or its socket) is away and may come back."""
    return isinstance(e, (*_ACTOR_GONE, WireClosed, OSError))


async def _unwrapped(call: Awaitable[Any]) -> Any:
    """A Ray call's answer; a store that refused a write becomes `ShardUnavailable`."""
    try:
        return await call
    except RayTaskError as e:
        if isinstance(e.cause, ShardMoved):
            raise ShardUnavailable("shard_moving") from e
        if isinstance(e.cause, StoreUnavailable):
            raise ShardUnavailable("state_store_unavailable") from e
        raise


async def _answer(call: Awaitable[list[Item]], kind: type[A]) -> A:
    """A shard's answer over its socket; the errors a client acts on become
    `ShardUnavailable`."""
    try:
        items = await call
    except WireRemoteError as e:
        if e.status == MOVED:
            raise ShardUnavailable("shard_moving") from e
        if e.status == STORE_UNAVAILABLE:
            raise ShardUnavailable("state_store_unavailable") from e
        raise
    return kind.from_items(items)


class WireConnections:
    """One open socket per shard actor (`actors.wire`); one connect at a time however many
    callers wait, and a broken connection is dropped so the next call reconnects."""

    def __init__(
        self,
        directory: ActorDirectory,
        tls: ssl.SSLContext | None = None,
        timeout_s: float = CALL_TIMEOUT_S,
    ) -> None:
        self.directory, self.tls, self.timeout_s = directory, tls, timeout_s
        self._open: dict[tuple[Kind, int], asyncio.Task[WireConnection]] = {}

    async def _connect(self, kind: Kind, shard: int) -> WireConnection:
        address = self.directory[kind, shard].open_wire.remote()
        try:
            host, port, token = await asyncio.wait_for(address, self.timeout_s)
        except TimeoutError as e:  # the actor's node is silent: as if the socket were
            raise WireClosed(f"no address in {self.timeout_s:g} s") from e
        return await WireConnection.open(host, port, token, self.tls, self.timeout_s)

    async def get(self, kind: Kind, shard: int) -> WireConnection:
        task = self._open.get((kind, shard))
        if (
            task is not None
            and task.done()
            and (task.cancelled() or task.exception() or task.result().closed)
        ):
            task = None
        if task is None:
            task = asyncio.get_running_loop().create_task(self._connect(kind, shard))
            self._open[kind, shard] = task
        return await asyncio.shield(task)

    def ready(self, kind: Kind, shard: int) -> WireConnection | None:
        """The open connection to this shard, if there is one (no waiting)."""
        task = self._open.get((kind, shard))
        if task is None or not task.done() or task.cancelled() or task.exception():
            return None
        conn = task.result()
        return None if conn.closed else conn

    def drop(self, kind: Kind, shard: int) -> None:
        self._open.pop((kind, shard), None)


class RayShardClient:
    """`ShardClient` over the shard actors; a call whose actor died is retried (the call may
    have run: shards deduplicate) for up to `retry_for_s` seconds, then `ShardUnavailable`."""

    def __init__(
        self,
        n_user_shards: int,
        n_terminal_shards: int,
        settings: ShardSettings | dict[str, Any],
        retry_for_s: float = 20.0,
        transport: Transport = "direct",
        call_timeout_s: float = CALL_TIMEOUT_S,
    ) -> None:
        self.n_user_shards, self.n_terminal_shards = n_user_shards, n_terminal_shards
        if not isinstance(settings, ShardSettings):
            settings = ShardSettings(**settings)
        self.key_groups = settings.key_groups
        self.label_delay_ms = settings.engine.label_delay_ms
        # A terminal write waits this long for a read to the same shard to carry it: at a
        # steady rate one message per request reaches a terminal shard, not two.
        self.write_linger_s = WRITE_LINGER_S
        self.retry_for_s = retry_for_s
        self.transport = transport  # "direct": `process` over the shard's socket; "ray"
        self.retries = 0
        self.directory = ActorDirectory(n_user_shards, n_terminal_shards, settings)
        tls = settings.wire_tls
        self.wires = WireConnections(
            self.directory,
            tls.client_context(REPO_ROOT) if tls is not None else None,
            call_timeout_s,
        )
        self.desk = DeskClient(self._desk_call)
        self.sink = DeskOutbox(settings.state.open(REPO_ROOT), self.desk, PendingDecisions())
        self.desk.before_read = self.sink.deliver

    async def _retrying(self, kind: Kind, shard: int, attempt: Callable[[], Awaitable[R]]) -> R:
        def before_retry() -> None:
            self.retries += 1
            self.wires.drop(kind, shard)
            with contextlib.suppress(Exception):  # the GCS may be busy restarting it
                self.directory.refresh(kind, shard)

        def give_up(_: BaseException) -> BaseException:
            return ShardUnavailable(f"{kind}_shard_unavailable")

        return await retry_while_gone(attempt, _gone, self.retry_for_s, before_retry, give_up)

    async def _ray_call(self, kind: Kind, shard: int, method: str, *args: Any) -> Any:
        """A Ray actor call, retried while the actor restarts."""

        async def attempt() -> Any:
            return await _unwrapped(getattr(self.directory[kind, shard], method).remote(*args))

        return await self._retrying(kind, shard, attempt)

    async def _desk_call(
        self, method: Callable[Concatenate[Desk, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        assert not kwargs, "desk calls take positional arguments"
        result: R = await self._ray_call("desk", 0, method.__name__, *args)
        return result

    async def _process(
        self,
        kind: Kind,
        shard: int,
        events: Columns,
        answer: type[A],
        method: str = "process",
        items: list[Item] | None = None,
    ) -> A:
        """`process` (or `method`) on a shard: over its socket (`transport: direct`, as
        `items`, the batch's own by default) or as a Ray call."""
        if self.transport == "ray":
            got: A = await self._ray_call(kind, shard, method, events)
            return got
        items = events.items() if items is None else items

        async def attempt() -> A:
            return await _answer((await self.wires.get(kind, shard)).call(items), answer)

        return await self._retrying(kind, shard, attempt)

    def start_terminal_step(
        self, shard: int, events: TerminalEvents
    ) -> asyncio.Future[TerminalAnswer]:
        conn = self.wires.ready("terminal", shard) if self.transport == "direct" else None
        if conn is None:
            return asyncio.ensure_future(self.terminal_step(shard, events))
        sent = conn.send(events.items())  # on the socket before this returns

        async def finish() -> TerminalAnswer:
            try:
                return await _answer(sent, TerminalAnswer)
            except (WireClosed, OSError):  # may not have run: the retrying call (shards dedup)
                return await self.terminal_step(shard, events)

        return asyncio.ensure_future(finish())

    async def user_step(self, shard: int, events: CardEvents) -> CardAnswer:
        return await self._process("user", shard, events, CardAnswer)

    async def recent_writes(self, shard: int, seconds: float) -> TerminalWrite:
        write: TerminalWrite = await self._ray_call("user", shard, "recent_writes", seconds)
        return write

    async def terminal_step(self, shard: int, events: TerminalEvents) -> TerminalAnswer:
        return await self._process("terminal", shard, events, TerminalAnswer)

    async def link_step(self, shard: int, events: LinkEvents) -> LinkAnswer:
        return await self._process(
            "terminal", shard, events, LinkAnswer, "process_links", events.frame()
        )

    async def stats(self) -> list[dict[str, Any]]:
        shards = self.directory.shards()
        return list(await asyncio.gather(*(self._ray_call(k, i, "stats") for k, i in shards)))

    async def ping(self, timeout_s: float = 2.0) -> bool:
        calls = [h.ping.remote() for h in self.directory.handles.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*calls), timeout_s)
        except (TimeoutError, *_ACTOR_GONE):
            return False
        return True
