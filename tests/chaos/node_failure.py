"""Node-failure drill: a card shard on a second (simulated) node that is then removed comes
back on the head node with its state from Redis.

Runs its own two-node Ray cluster (`ray.cluster_utils.Cluster`, own ports and temp dir), so
it is started as a separate process: `python -m tests.chaos.node_failure --redis-url URL`.
Prints one JSON line with what it measured; exits non-zero if the state did not survive.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis-url", required=True)
    args = ap.parse_args()

    import ray
    from ray.cluster_utils import Cluster
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from actors.client.directory import _ACTOR_OPTIONS, _ACTORS
    from actors.events import CardEvents
    from features.ids import OFFLINE
    from tests.shard_actors import card_totals

    temp_dir = tempfile.mkdtemp(prefix="ray-node-drill-")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "temp_dir": temp_dir})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        settings = {
            "state": {
                "backend": "redis",
                "redis_url": args.redis_url,
                "prefix": f"drill-{int(time.time())}",
                "snapshot_every": 50,
            }
        }

        def node_of(actor: object) -> str:
            return ray.get(
                actor.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id())
            )

        # Soft affinity (so the restart may go elsewhere); a node that has only just joined
        # can be passed over, so try a few times.
        for attempt in range(10):
            shard = (
                _ACTORS["user"]
                .options(
                    name=f"drill:user:0-of-1:{attempt}",
                    namespace="drill",
                    **{
                        **_ACTOR_OPTIONS,
                        "scheduling_strategy": NodeAffinitySchedulingStrategy(
                            worker.node_id, soft=True
                        ),
                    },
                )
                .remote(0, 1, settings)
            )
            node_before = node_of(shard)
            if node_before == worker.node_id:
                break
            ray.kill(shard, no_restart=True)
            time.sleep(1.0)
        else:
            print(json.dumps({"ok": False, "error": "shard was not placed on the worker node"}))
            return 1
        rng = np.random.default_rng(0)
        users = [OFFLINE.digest(f"card-{i}") for i in range(50)]
        sent: dict[str, tuple[int, float]] = {}
        t0 = 1_530_000_000_000
        for i in range(400):
            u = users[int(rng.integers(0, 50))]
            amount = float(np.round(rng.uniform(1, 100), 2))
            ray.get(
                shard.process.remote(
                    CardEvents.without_writes(
                        [f"tx-{i}"],
                        np.array([i]),
                        [u],
                        np.array([t0 + i * 60_000]),
                        np.array([amount]),
                        np.array([1], np.int32),
                    )
                )
            )
            n, s = sent.get(u, (0, 0.0))
            sent[u] = (n + 1, s + amount)
        cluster.remove_node(worker)
        removed_at = time.monotonic()
        while True:
            try:
                totals = ray.get(card_totals(shard, list(sent)), timeout=5)
                break
            except Exception:
                if time.monotonic() - removed_at > 60:
                    print(json.dumps({"ok": False, "error": "shard not back within 60 s"}))
                    return 1
                time.sleep(0.2)
        back_s = time.monotonic() - removed_at
        node_after = ray.get(
            shard.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id())
        )
        ok = node_after != node_before and all(
            t[0] == sent[u][0] and abs(t[1] - sent[u][1]) < 1e-6
            for u, t in zip(sent, totals, strict=True)
        )
        print(
            json.dumps(
                {
                    "ok": ok,
                    "moved": node_after != node_before,
                    "back_seconds": round(back_s, 2),
                    "cards": len(sent),
                    "transactions": 400,
                }
            )
        )
        return 0 if ok else 1
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main())
