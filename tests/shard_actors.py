"""Test helpers over the live shard actors: what a test asks of them that the service never
does (remove them all, read a card's lifetime totals)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def settings_of(app_args: dict[str, Any] | None) -> Any:
    """The `ShardSettings` an app with these arguments builds its actors from."""
    from actors.actor.journal import ShardSettings
    from deployments.settings import AppArgs

    return AppArgs(**app_args).shards if app_args is not None else ShardSettings()


def kill_shard_actors(
    n_user_shards: int, n_terminal_shards: int, app_args: dict[str, Any] | None = None
) -> None:
    """Remove every actor of one app's shard layout (they are detached, so they outlive
    the app), found by name."""
    import contextlib

    import ray

    from actors.client.directory import NAMESPACE, actor_name, desk_tag, store_tag

    settings = settings_of(app_args)
    tag = store_tag(settings)
    names = [
        *(actor_name("user", i, n_user_shards, tag) for i in range(n_user_shards)),
        *(actor_name("terminal", i, n_terminal_shards, tag) for i in range(n_terminal_shards)),
        actor_name("desk", 0, 1, desk_tag(settings, n_user_shards, n_terminal_shards)),
    ]
    for name in names:
        with contextlib.suppress(ValueError):  # never started, or already gone
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)


def shard_handles(kind: str, n: int, app_args: dict[str, Any] | None = None) -> list[Any]:
    """The live shard actors of one kind of an app's layout."""
    import ray

    from actors.client.directory import NAMESPACE, actor_name, store_tag

    tag = store_tag(settings_of(app_args))
    return [ray.get_actor(actor_name(kind, i, n, tag), namespace=NAMESPACE) for i in range(n)]


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


def assert_counted_once(frame: Any, ids: Any, n_user_shards: int, n_terminal_shards: int) -> None:
    """Every card's state counted each of its transactions in `frame` exactly once (count
    and amount, read from the live card shards)."""
    import pytest
    import ray

    from actors.client.remote import RayShardClient

    shards = RayShardClient(n_user_shards, n_terminal_shards, {})
    per_card = frame.groupby("user_id")["amount"].agg(["count", "sum"])
    for s in range(n_user_shards):
        cards = [u for u in per_card.index if ids.shard_of(u, n_user_shards) == s]
        handle = shards.directory["user", s]
        totals = ray.get(card_totals(handle, [ids.digest(u) for u in cards]))
        for card, (count, amount) in zip(cards, totals, strict=True):
            assert count == per_card.loc[card, "count"], card
            assert amount == pytest.approx(per_card.loc[card, "sum"], abs=1e-6)
