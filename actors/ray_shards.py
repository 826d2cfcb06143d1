"""Named Ray actors for the shards and the desk, and a client that finds them after a restart.

Actors are detached and named `fraud:<kind>:<i>-of-<n>` in namespace `fraud`, so a restarted
(or second) ingress reaches the same state; they reserve no CPU (`num_cpus=0`: on a small
node a default 1-CPU reservation stalls placement) and Ray restarts them if they die, after
which they rebuild their state from the store before serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

import numpy as np
import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

from actors.desk import Desk
from actors.shards import TerminalShard, UserShard
from actors.state_store import StoreUnavailable
from actors.wire import (
    STORE_UNAVAILABLE,
    WireClosed,
    WireConnection,
    WireRemoteError,
    WireServer,
    wire_items,
)

NAMESPACE = "fraud"
_ACTOR_OPTIONS: dict[str, Any] = {
    "num_cpus": 0,
    "lifetime": "detached",
    "max_restarts": -1,
    "max_task_retries": 0,  # the client retries: every shard call is idempotent
    "max_concurrency": 1,  # calls run one at a time, in arrival order: per-card order holds
}
_ACTOR_GONE = (ActorDiedError, ActorUnavailableError, RayActorError)
MAX_PENDING_ROWS = 200_000  # LEGIT decisions held for the desk while it is unreachable


class _Wired:
    """A shard actor that also takes `process` calls over its own socket (`actors.wire`)."""

    _wire: WireServer | None = None

    def open_wire(self) -> tuple[str, int, bytes]:
        """(host, port, token) of this actor's socket, opened on first use on its node's
        address. The token travels only through Ray, so only Ray's clients can connect."""
        if self._wire is None:
            self._wire = WireServer(self.process, ray.util.get_node_ip_address())  # type: ignore[attr-defined]
        return (*self._wire.address, self._wire.token)


class UserShardActor(_Wired, UserShard):
    pass


class TerminalShardActor(_Wired, TerminalShard):
    pass


_ACTORS = {
    "user": ray.remote(UserShardActor),
    "terminal": ray.remote(TerminalShardActor),
    "desk": ray.remote(Desk),
}


class ShardUnavailable(RuntimeError):
    """A shard did not answer within the retry budget, or its state store refused a write."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def actor_name(kind: str, shard: int, n_shards: int, layout: str = "") -> str:
    return f"fraud:{kind}:{shard}-of-{n_shards}" + (f"@{layout}" if layout else "")


def get_or_create(
    kind: str, shard: int, n_shards: int, settings: dict[str, Any], layout: str = ""
) -> Any:
    """The actor's handle, creating the actor if no live one has that name."""
    options = _ACTORS[kind].options(
        name=actor_name(kind, shard, n_shards, layout),
        namespace=NAMESPACE,
        get_if_exists=True,
        **_ACTOR_OPTIONS,
    )
    return options.remote(shard, n_shards, settings)


class RayShardClient:
    """Calls shard actors; retries a call whose actor died (the call may have run: shards
    deduplicate), re-resolving the handle by name, for up to `retry_for_s` seconds."""

    def __init__(
        self,
        n_user_shards: int,
        n_terminal_shards: int,
        settings: dict[str, Any],
        retry_for_s: float = 20.0,
        transport: Literal["direct", "ray"] = "direct",
    ) -> None:
        self.n_user_shards, self.n_terminal_shards = n_user_shards, n_terminal_shards
        self.settings = settings
        self.retry_for_s = retry_for_s
        self.transport = transport  # "direct": `process` over the shard's socket; "ray"
        self.retries = 0
        self._handles: dict[tuple[str, int], Any] = {}
        self._wires: dict[tuple[str, int], asyncio.Task[WireConnection]] = {}
        self._layout = f"{n_user_shards}u{n_terminal_shards}t"
        self._pending: list[dict[str, Any]] = []
        self._pending_rows = 0
        self.dropped_rows = 0
        for i in range(n_user_shards):
            self._handles["user", i] = get_or_create("user", i, n_user_shards, settings)
        for i in range(n_terminal_shards):
            self._handles["terminal", i] = get_or_create("terminal", i, n_terminal_shards, settings)
        # One desk per shard layout, as for the shards: two apps on one cluster with different
        # shard counts keep separate reviews, labels and rules.
        self._handles["desk", 0] = get_or_create("desk", 0, 1, settings, self._layout)

    def _n(self, kind: str) -> int:
        return {"user": self.n_user_shards, "terminal": self.n_terminal_shards}.get(kind, 1)

    async def _call(self, kind: str, shard: int, method: str, *args: Any) -> Any:
        """A Ray actor call, retried while the actor restarts."""

        async def attempt() -> Any:
            try:
                return await getattr(self._handles[kind, shard], method).remote(*args)
            except RayTaskError as e:
                if isinstance(e.cause, StoreUnavailable):
                    raise ShardUnavailable("state_store_unavailable") from e
                raise

        return await self._retrying(kind, shard, attempt)

    async def _process(self, kind: str, shard: int, *args: Any) -> Any:
        """`process` on a shard: over its socket (`transport: direct`) or as a Ray call. A
        broken connection is a dead actor until proven otherwise."""
        if self.transport == "ray":
            return await self._call(kind, shard, "process", *args)
        items = wire_items(args)

        async def attempt() -> Any:
            try:
                return tuple(await (await self._wire(kind, shard)).call(items))
            except WireRemoteError as e:
                if e.status == STORE_UNAVAILABLE:
                    raise ShardUnavailable("state_store_unavailable") from e
                raise

        return await self._retrying(kind, shard, attempt)

    async def _retrying(self, kind: str, shard: int, attempt: Callable[[], Awaitable[Any]]) -> Any:
        """Retry `attempt` while the shard is gone (the call may have run: shards
        deduplicate), re-resolving the actor by name, for up to `retry_for_s` seconds."""
        deadline = time.monotonic() + self.retry_for_s
        delay = 0.05
        while True:
            try:
                return await attempt()
            except (*_ACTOR_GONE, WireClosed, OSError) as e:
                if time.monotonic() > deadline:
                    raise ShardUnavailable(f"{kind}_shard_unavailable") from e
                self.retries += 1
                self._wires.pop((kind, shard), None)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                # The GCS may be busy restarting it: then try again next round.
                with contextlib.suppress(Exception):
                    self._handles[kind, shard] = get_or_create(
                        kind, shard, self._n(kind), self.settings,
                        self._layout if kind == "desk" else "",
                    )  # fmt: skip

    async def _connect(self, kind: str, shard: int) -> WireConnection:
        host, port, token = await self._handles[kind, shard].open_wire.remote()
        return await WireConnection.open(host, port, token)

    async def _wire(self, kind: str, shard: int) -> WireConnection:
        """The open connection to a shard; one connect at a time however many callers wait."""
        task = self._wires.get((kind, shard))
        if (
            task is not None
            and task.done()
            and (task.cancelled() or task.exception() or task.result().closed)
        ):
            task = None
        if task is None:
            task = asyncio.get_running_loop().create_task(self._connect(kind, shard))
            self._wires[kind, shard] = task
        return await asyncio.shield(task)

    async def user_step(self, shard: int, *args: Any) -> tuple[np.ndarray, np.ndarray]:
        return await self._process("user", shard, *args)

    async def terminal_step(
        self,
        shard: int,
        kinds: np.ndarray,
        terminal_keys: Sequence[str],
        times: np.ndarray,
        keys: np.ndarray,
        labels: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        return await self._process("terminal", shard, kinds, terminal_keys, times, keys, labels)

    async def desk(self, method: str, *args: Any) -> Any:
        """Call the desk actor (reviews, labels, policy, live numbers)."""
        return await self._call("desk", 0, method, *args)

    async def record(self, batch: dict[str, Any], wait: bool) -> None:
        """Flagged batches go to the desk now (the answer waits for the journal); LEGIT-only
        ones wait for the next `take_pending` (one desk call per tick, not per request)."""
        if wait:
            await self._call("desk", 0, "record", batch)
            return
        self._pending.append(batch)
        self._pending_rows += len(batch["ids"])
        while self._pending_rows > MAX_PENDING_ROWS and len(self._pending) > 1:
            dropped = self._pending.pop(0)  # the desk is away: LEGIT history is best effort
            self._pending_rows -= len(dropped["ids"])
            self.dropped_rows += len(dropped["ids"])

    def take_pending(self) -> list[dict[str, Any]]:
        batches, self._pending, self._pending_rows = self._pending, [], 0
        return batches

    def put_back(self, batches: list[dict[str, Any]]) -> None:
        """Batches whose desk call failed: kept, oldest first, for the next tick."""
        self._pending[:0] = batches
        self._pending_rows += sum(len(b["ids"]) for b in batches)

    async def stats(self) -> list[dict[str, Any]]:
        shards = [(k, i) for (k, i) in self._handles if k != "desk"]
        return list(await asyncio.gather(*(self._call(k, i, "stats") for (k, i) in shards)))

    async def ping(self, timeout_s: float = 2.0) -> bool:
        calls = [h.ping.remote() for h in self._handles.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*calls), timeout_s)
        except (TimeoutError, *_ACTOR_GONE):
            return False
        return True

    def kill_all(self) -> None:
        """Remove every shard actor (they are detached, so they outlive the app otherwise)."""
        for handle in self._handles.values():
            ray.kill(handle, no_restart=True)
