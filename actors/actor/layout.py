"""Which shard layout owns a state store's cards and terminals, and moving to another.

The store holds one layout record per kind of shard: how many shards own the key groups
(`features.groups`), how many groups there are (fixed for the store's life), and, while a
move is under way, the layout it moves to. A shard of any other layout refuses writes
(`ShardMoved`), so a restarted or stray actor of an old layout can never fork the state.

`ensure_layout` moves the state when the configured shard count differs from the record:
1. the record names the target, which seals the old layout durably;
2. every old shard is sealed: it finishes its writes, checkpoints whole, refuses more;
3. every new shard takes over its key groups from what the old shards stored;
4. the record names the new layout; the new shards open; the old shards' state is deleted.
A move that stopped part-way is finished by the next call, from step 1: nothing is deleted
before step 4, and taking over again rebuilds a new shard from the old state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from actors.store import records
from actors.store.backends import StateStore, StoreUnavailable

Kind = Literal["user", "terminal"]
# `call(shard, n_shards, method, *args)`: run a method of that shard (creating it if needed)
ShardCall = Callable[..., Any]


class ShardMoved(StoreUnavailable):
    """This shard's key groups are moving or have moved to another layout: nothing was
    applied; retry, and the layout that owns them answers."""


class KeyGroupsChanged(RuntimeError):
    """The configured number of key groups differs from the one the store was built with."""


class Layout(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    n_shards: int = Field(ge=1)
    groups: int = Field(ge=1)
    epoch: int = 0
    moving_to: int | None = None

    def serves(self, n_shards: int) -> bool:
        """Whether shards of `n_shards` take writes under this record."""
        return self.moving_to is None and self.n_shards == n_shards


def _record(kind: Kind) -> str:
    return f"layout-{kind}"


def read_layout(store: StateStore, kind: Kind) -> Layout | None:
    data = store.load(_record(kind)).base
    return None if data is None else Layout.model_validate(records.decode(data))


def write_layout(store: StateStore, kind: Kind, layout: Layout) -> None:
    store.checkpoint(_record(kind), 0, records.encode(layout.model_dump()), full=True)


def ensure_layout(
    store: StateStore,
    kind: Kind,
    n_shards: int,
    groups: int,
    call: ShardCall,
    drop: Callable[[int, int], None] = lambda shard, n: None,
) -> Layout:
    """Make `n_shards` shards own `kind`'s key groups, moving state if another layout
    owns it (see the module docstring); returns the record in force. `drop(shard, n)`
    lets the caller stop an old shard's process once its state is gone."""
    found = read_layout(store, kind)
    if found is None:
        layout = Layout(n_shards=n_shards, groups=groups)
        write_layout(store, kind, layout)
        return layout
    if found.groups != groups:
        raise KeyGroupsChanged(
            f"key_groups: this state store was built with {found.groups} key groups and the "
            f"config says {groups}; the number is fixed for a store's life (keep "
            f"{found.groups}, or start on new state)"
        )
    if found.serves(n_shards):
        return found
    old = found.n_shards
    if found.moving_to is not None and found.moving_to != n_shards:
        for i in range(found.moving_to):  # a move to another layout stopped part-way
            call(i, found.moving_to, "retire")
            drop(i, found.moving_to)
    if old == n_shards:  # back to the layout that still owns the state
        layout = found.model_copy(update={"moving_to": None})
        write_layout(store, kind, layout)
        for j in range(old):
            call(j, old, "activate")
        return layout
    write_layout(store, kind, found.model_copy(update={"moving_to": n_shards}))
    for j in range(old):
        call(j, old, "seal")
    for i in range(n_shards):
        call(i, n_shards, "take_over", old)
    layout = Layout(n_shards=n_shards, groups=groups, epoch=found.epoch + 1)
    write_layout(store, kind, layout)
    for i in range(n_shards):
        call(i, n_shards, "activate")
    for j in range(old):
        call(j, old, "retire")
        drop(j, old)
    return layout
