"""Both shard transports reach the same actor state, and the socket survives a restart.

Ray actors, no Serve: a card's transactions alternate between a `direct` client (the
shard's socket) and a `ray` client (actor calls); the card's windows must count every one
exactly once, and a kill -9 of the shard must cost the direct client a retry, not an error.
"""

from __future__ import annotations

import asyncio
import os
import signal

import numpy as np
import pytest

from actors.events import CardEvents
from features.ids import OFFLINE

pytestmark = pytest.mark.ray
N_USER, N_TERMINAL = 1, 3  # a layout no other test uses: its own actors


def _call(i: int, card: str) -> CardEvents:
    time = np.array([1_600_000_000_000 + 60_000 * i], np.int64)
    return CardEvents(
        [OFFLINE.keys(f"st-tx-{i}")[0]], np.array([i], np.int64), [OFFLINE.keys(card)[0]], time,
        np.array([10.0]), np.zeros(1, np.int32), np.array([5], np.int64), ["st-term"],
        np.array([i], np.int64),
    )  # fmt: skip


def test_direct_and_ray_calls_share_one_ordered_state(ray_cluster: None) -> None:
    import ray

    from actors.client.remote import RayShardClient
    from tests.shard_actors import kill_shard_actors

    direct = RayShardClient(N_USER, N_TERMINAL, {}, retry_for_s=30, transport="direct")
    via_ray = RayShardClient(N_USER, N_TERMINAL, {}, transport="ray")

    pids: list[int] = []

    async def go() -> list[float]:
        counts = []
        for i in range(12):
            client = direct if i % 2 else via_ray
            answer = await client.user_step(0, _call(i, "st-card"))
            feats, status = answer.features, answer.status
            assert status.tolist() == [0]
            counts.append(float(feats[0, 0]))  # transactions in the card's 1-day window
            if i == 7:  # kill -9 the shard: the direct client must reconnect, not fail
                pids.append(ray.get(direct.directory["user", 0].pid.remote()))
                os.kill(pids[0], signal.SIGKILL)
        # A retry of an applied transaction over the socket changes nothing.
        again = await direct.user_step(0, _call(9, "st-card"))
        assert again.status.tolist() == [1]
        pids.append(ray.get(direct.directory["user", 0].pid.remote()))
        return counts

    try:
        counts = asyncio.run(go())
    finally:
        kill_shard_actors(N_USER, N_TERMINAL)
    # Memory state (the test's settings) restarts empty: counting starts again after the kill.
    assert counts == [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4]
    assert pids[0] != pids[1]  # it was a new process that answered
