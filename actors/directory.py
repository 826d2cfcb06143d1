"""Named Ray actors for the shards and the desk, found again by name after a restart.

Actors are detached and named `fraud:<kind>:<i>-of-<n>` in namespace `fraud`, so a restarted
(or second) ingress reaches the same state; they reserve no CPU (`num_cpus=0`: on a small
node a default 1-CPU reservation stalls placement) and Ray restarts them if they die, after
which they rebuild their state from the store before serving.
"""

from __future__ import annotations

from typing import Any, Literal

import ray

from actors.desk import Desk
from actors.journal import REPO_ROOT, ShardSettings
from actors.shards import TerminalShard, UserShard
from actors.wire import WireServer

NAMESPACE = "fraud"
Kind = Literal["user", "terminal", "desk"]
_ACTOR_OPTIONS: dict[str, Any] = {
    "num_cpus": 0,
    "lifetime": "detached",
    "max_restarts": -1,
    "max_task_retries": 0,  # the client retries: every shard call is idempotent
    "max_concurrency": 1,  # calls run one at a time, in arrival order: per-card order holds
}


class _Wired:
    """A shard actor that also takes `process` calls over its own socket (`actors.wire`)."""

    _wire: WireServer | None = None

    def open_wire(self) -> tuple[str, int, bytes]:
        """(host, port, token) of this actor's socket, opened on first use on its node's
        address. The token travels only through Ray, so only Ray's clients can connect."""
        if self._wire is None:
            host: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
            tls = self.settings.wire_tls  # type: ignore[attr-defined]
            ctx = tls.server_context(REPO_ROOT) if tls is not None else None
            self._wire = WireServer(self.process, host, ctx)  # type: ignore[attr-defined]
        return (*self._wire.address, self._wire.token)


class UserShardActor(_Wired, UserShard):
    pass


class TerminalShardActor(_Wired, TerminalShard):
    pass


_ACTORS: dict[Kind, Any] = {
    "user": ray.remote(UserShardActor),
    "terminal": ray.remote(TerminalShardActor),
    "desk": ray.remote(Desk),
}


def actor_name(kind: Kind, shard: int, n_shards: int, layout: str = "") -> str:
    return f"fraud:{kind}:{shard}-of-{n_shards}" + (f"@{layout}" if layout else "")


def get_or_create(
    kind: Kind, shard: int, n_shards: int, settings: ShardSettings, layout: str = ""
) -> Any:
    """The actor's handle, creating the actor if no live one has that name."""
    options = _ACTORS[kind].options(
        name=actor_name(kind, shard, n_shards, layout),
        namespace=NAMESPACE,
        get_if_exists=True,
        **_ACTOR_OPTIONS,
    )
    return options.remote(shard, n_shards, settings.model_dump())


class ActorDirectory:
    """The handles of one shard layout's actors (n card shards, m terminal shards, their
    desk), created on first use and looked up again by name after a failure."""

    def __init__(self, n_user_shards: int, n_terminal_shards: int, settings: ShardSettings):
        self.n_user_shards, self.n_terminal_shards = n_user_shards, n_terminal_shards
        self.settings = settings
        # One desk per shard layout, as for the shards: two apps on one cluster with
        # different shard counts keep separate reviews, labels and rules.
        self.layout = f"{n_user_shards}u{n_terminal_shards}t"
        self.handles: dict[tuple[Kind, int], Any] = {}
        for i in range(n_user_shards):
            self.handles["user", i] = get_or_create("user", i, n_user_shards, settings)
        for i in range(n_terminal_shards):
            self.handles["terminal", i] = get_or_create("terminal", i, n_terminal_shards, settings)
        self.handles["desk", 0] = get_or_create("desk", 0, 1, settings, self.layout)

    def __getitem__(self, key: tuple[Kind, int]) -> Any:
        return self.handles[key]

    def refresh(self, kind: Kind, shard: int) -> None:
        """Look the actor up again (Ray may have restarted it)."""
        n = {"user": self.n_user_shards, "terminal": self.n_terminal_shards, "desk": 1}[kind]
        layout = self.layout if kind == "desk" else ""
        self.handles[kind, shard] = get_or_create(kind, shard, n, self.settings, layout)

    def shards(self) -> list[tuple[Kind, int]]:
        return [key for key in self.handles if key[0] != "desk"]
