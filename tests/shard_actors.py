"""Test helpers over the live shard actors: what a test asks of them that the service never
does (remove them all, read a card's lifetime totals)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def kill_shard_actors(n_user_shards: int, n_terminal_shards: int) -> None:
    """Remove every actor of one shard layout (they are detached, so they outlive the app)."""
    import ray

    from actors.directory import ActorDirectory
    from actors.journal import ShardSettings

    directory = ActorDirectory(n_user_shards, n_terminal_shards, ShardSettings())
    for handle in directory.handles.values():
        ray.kill(handle, no_restart=True)


def card_totals(shard: Any, user_keys: Sequence[str]) -> Any:
    """An `ObjectRef` to (transactions, amount sum) ever applied per card digest, read
    inside a card shard actor (`__ray_call__`): the ledger check of fault tests."""

    def read(actor: Any, keys: list[str]) -> list[tuple[int, float]]:
        out = []
        for key in keys:
            slot = actor.users.index.get(key)
            if slot is None:
                out.append((0, 0.0))
            else:
                s = actor.users.scalars
                out.append((int(s["count_total"][slot]), float(s["sum_total"][slot])))
        return out

    return shard.__ray_call__.remote(read, list(user_keys))
