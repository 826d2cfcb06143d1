"""Named Ray actors for the shards and the desk, found again by name after a restart.

Actors are detached and named `fraud:<kind>:<i>-of-<n>` in namespace `fraud`, so a restarted
(or second) ingress reaches the same state; they reserve `actor_cpus` (default none: on a
small node a default 1-CPU reservation stalls placement; a cluster asks a little, which keeps
them off a head started with `--num-cpus 0`), spread over a cluster's nodes, and Ray
restarts them if they die (on another node if theirs is gone), after
which they rebuild their state from the store before serving. One `LayoutKeeper` actor per
cluster moves key groups when an ingress starts with other shard counts than the store's
layout (`actors.actor.layout`), one move at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any, Literal

import ray

from actors import heap
from actors.actor.desk import Desk
from actors.actor.journal import ShardSettings
from actors.actor.layout import Kind as LayoutKind
from actors.actor.layout import ensure_layout
from actors.actor.shards import TerminalShard, UserShard
from actors.paths import REPO_ROOT
from actors.wire import WireServer

NAMESPACE = "fraud"
Kind = Literal["user", "terminal", "desk"]
_ACTOR_OPTIONS: dict[str, Any] = {
    "lifetime": "detached",
    "max_restarts": -1,
    "max_task_retries": 0,  # the client retries: every shard call is idempotent
    "max_concurrency": 1,  # calls run one at a time, in arrival order: per-card order holds
    "scheduling_strategy": "SPREAD",  # on a cluster, state and its work over the nodes
}


class _Settled:
    """An actor whose process, once its state is rebuilt, keeps what it holds out of every
    later collection and collects less often (`actors.heap`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        heap.settle()


class _Wired(_Settled):
    """A shard actor that also takes `process` calls over its own socket (`actors.wire`),
    as the items of its batches (`actors.events`)."""

    _wire: WireServer | None = None

    def open_wire(self) -> tuple[str, int, bytes]:
        """(host, port, token) of this actor's socket, opened on first use on its node's
        address. The token travels only through Ray, so only Ray's clients can connect."""
        if self._wire is None:
            host: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
            tls = self.settings.wire_tls  # type: ignore[attr-defined]
            ctx = tls.server_context(REPO_ROOT) if tls is not None else None
            self._wire = WireServer(self.serve, host, ctx)  # type: ignore[attr-defined]
        return (*self._wire.address, self._wire.token)


class UserShardActor(_Wired, UserShard):
    pass


class TerminalShardActor(_Wired, TerminalShard):
    pass


class DeskActor(_Settled, Desk):
    pass


_ACTORS: dict[Kind, Any] = {
    "user": ray.remote(UserShardActor),
    "terminal": ray.remote(TerminalShardActor),
    "desk": ray.remote(DeskActor),
}


def store_tag(settings: ShardSettings) -> str:
    """A short name for the store the settings open ("" for a memory store, which lives in
    each actor). Shard and desk actors carry it: actors of two stores never mix, and a
    move between layouts of one store keeps its desk."""
    if settings.state.backend == "memory":
        return ""
    text = settings.state.model_dump_json()
    return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()


def desk_tag(settings: ShardSettings, n_user_shards: int, n_terminal_shards: int) -> str:
    """The desk's tag: its store's, or the layout's for a memory store (which cannot be
    shared between actors, so each layout keeps its own desk)."""
    return store_tag(settings) or f"{n_user_shards}u{n_terminal_shards}t"


def actor_name(kind: Kind, shard: int, n_shards: int, tag: str = "") -> str:
    return f"fraud:{kind}:{shard}-of-{n_shards}" + (f"@{tag}" if tag else "")


def get_or_create(
    kind: Kind, shard: int, n_shards: int, settings: ShardSettings, tag: str | None = None
) -> Any:
    """The actor's handle, creating the actor if no live one has that name (`tag`: the
    store's unless given)."""
    options = _ACTORS[kind].options(
        name=actor_name(kind, shard, n_shards, store_tag(settings) if tag is None else tag),
        namespace=NAMESPACE,
        get_if_exists=True,
        num_cpus=settings.actor_cpus,
        **_ACTOR_OPTIONS,
    )
    return options.remote(shard, n_shards, settings.model_dump())


class LayoutKeeper:
    """Runs `ensure_layout` for ingress replicas, one call at a time (`max_concurrency`
    1), against the shard actors by name; kills an old layout's actors once their state
    has moved."""

    def ensure(self, kind: LayoutKind, n_shards: int, settings: dict[str, Any]) -> dict[str, Any]:
        shard_settings = ShardSettings(**settings)
        store = shard_settings.state.open(REPO_ROOT)
        tag = store_tag(shard_settings)

        def call(shard: int, n: int, method: str, *args: Any) -> Any:
            handle = get_or_create(kind, shard, n, shard_settings)
            return ray.get(getattr(handle, method).remote(*args))

        def drop(shard: int, n: int) -> None:
            with contextlib.suppress(ValueError):  # no such actor: nothing to stop
                actor = ray.get_actor(actor_name(kind, shard, n, tag), namespace=NAMESPACE)
                ray.kill(actor, no_restart=True)

        layout = ensure_layout(store, kind, n_shards, shard_settings.key_groups, call, drop)
        return layout.model_dump()


_KEEPER: Any = ray.remote(LayoutKeeper)


def ensure_layouts(n_user_shards: int, n_terminal_shards: int, settings: ShardSettings) -> None:
    """Make these shard counts own the store's state, moving it if needed (blocks until
    done). A memory store lives in each actor: there is nothing to move."""
    if settings.state.backend == "memory":
        return
    keeper = _KEEPER.options(
        name="fraud:layout-keeper",
        namespace=NAMESPACE,
        get_if_exists=True,
        num_cpus=settings.actor_cpus,
        **_ACTOR_OPTIONS,
    ).remote()
    dump = settings.model_dump()
    ray.get(keeper.ensure.remote("user", n_user_shards, dump))
    ray.get(keeper.ensure.remote("terminal", n_terminal_shards, dump))


class ActorDirectory:
    """The handles of one shard layout's actors (n card shards, m terminal shards, their
    desk), created on first use and looked up again by name after a failure."""

    def __init__(self, n_user_shards: int, n_terminal_shards: int, settings: ShardSettings):
        self.n_user_shards, self.n_terminal_shards = n_user_shards, n_terminal_shards
        self.settings = settings
        self.desk_tag = desk_tag(settings, n_user_shards, n_terminal_shards)
        ensure_layouts(n_user_shards, n_terminal_shards, settings)
        self.handles: dict[tuple[Kind, int], Any] = {}
        for i in range(n_user_shards):
            self.handles["user", i] = get_or_create("user", i, n_user_shards, settings)
        for i in range(n_terminal_shards):
            self.handles["terminal", i] = get_or_create("terminal", i, n_terminal_shards, settings)
        self.handles["desk", 0] = get_or_create("desk", 0, 1, settings, self.desk_tag)

    def __getitem__(self, key: tuple[Kind, int]) -> Any:
        return self.handles[key]

    def refresh(self, kind: Kind, shard: int) -> None:
        """Look the actor up again (Ray may have restarted it)."""
        n = {"user": self.n_user_shards, "terminal": self.n_terminal_shards, "desk": 1}[kind]
        tag = self.desk_tag if kind == "desk" else None
        self.handles[kind, shard] = get_or_create(kind, shard, n, self.settings, tag)

    def shards(self) -> list[tuple[Kind, int]]:
        return [key for key in self.handles if key[0] != "desk"]
