"""Named Ray actors for the shards, and a client that finds them again after a restart.

Actors are detached and named `fraud:<kind>:<i>-of-<n>` in namespace `fraud`, so a restarted
(or second) ingress reaches the same state; they reserve no CPU (`num_cpus=0`: on a small
node a default 1-CPU reservation stalls placement) and Ray restarts them if they die.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from actors.shards import TerminalShard, UserShard

NAMESPACE = "fraud"
_ACTOR_OPTIONS: dict[str, Any] = {
    "num_cpus": 0,
    "lifetime": "detached",
    "max_restarts": -1,
    "max_concurrency": 1,  # calls run one at a time, in arrival order: per-card order holds
}
_RETRYABLE = (ActorDiedError, ActorUnavailableError, RayActorError)

UserShardActor = ray.remote(UserShard)
TerminalShardActor = ray.remote(TerminalShard)


def actor_name(kind: str, shard: int, n_shards: int) -> str:
    return f"fraud:{kind}:{shard}-of-{n_shards}"


def get_or_create(kind: str, shard: int, n_shards: int, config: dict[str, Any]) -> Any:
    """The shard's actor handle, creating the actor if no live one has that name."""
    cls = UserShardActor if kind == "user" else TerminalShardActor
    return cls.options(
        name=actor_name(kind, shard, n_shards),
        namespace=NAMESPACE,
        get_if_exists=True,
        **_ACTOR_OPTIONS,
    ).remote(shard, n_shards, config)


class RayShardClient:
    """Calls shard actors; re-resolves a handle by name when its actor is gone."""

    def __init__(self, n_user_shards: int, n_terminal_shards: int, config: dict[str, Any]) -> None:
        self.n_user_shards, self.n_terminal_shards = n_user_shards, n_terminal_shards
        self.config = config
        self._handles: dict[tuple[str, int], Any] = {}
        for i in range(n_user_shards):
            self._handles["user", i] = get_or_create("user", i, n_user_shards, config)
        for i in range(n_terminal_shards):
            self._handles["terminal", i] = get_or_create("terminal", i, n_terminal_shards, config)

    def _n(self, kind: str) -> int:
        return self.n_user_shards if kind == "user" else self.n_terminal_shards

    async def _call(self, kind: str, shard: int, method: str, *args: Any) -> Any:
        try:
            return await getattr(self._handles[kind, shard], method).remote(*args)
        except _RETRYABLE:
            # The actor died for good (or its handle went stale): resolve it again by name.
            # A call that raised may still have run, so only idempotent work may be retried
            # by the caller; here we surface the error after refreshing the handle.
            self._handles[kind, shard] = get_or_create(kind, shard, self._n(kind), self.config)
            raise

    async def user_step(
        self,
        shard: int,
        user_ids: Sequence[str],
        times: np.ndarray,
        amounts: np.ndarray,
        terminal_hashes: np.ndarray,
    ) -> np.ndarray:
        return await self._call("user", shard, "process", user_ids, times, amounts, terminal_hashes)

    async def terminal_step(
        self,
        shard: int,
        kinds: np.ndarray,
        terminal_ids: Sequence[str],
        times: np.ndarray,
        keys: np.ndarray,
        labels: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        return await self._call(
            "terminal", shard, "process", kinds, terminal_ids, times, keys, labels
        )

    async def stats(self) -> list[dict[str, Any]]:
        calls = [self._call(k, i, "stats") for (k, i) in self._handles]
        return list(await asyncio.gather(*calls))

    async def ping(self, timeout_s: float = 2.0) -> bool:
        calls = [self._call(k, i, "ping") for (k, i) in self._handles]
        try:
            await asyncio.wait_for(asyncio.gather(*calls), timeout_s)
        except (TimeoutError, *_RETRYABLE):
            return False
        return True

    def kill_all(self) -> None:
        """Remove every shard actor (they are detached, so they outlive the app otherwise)."""
        for handle in self._handles.values():
            ray.kill(handle, no_restart=True)
