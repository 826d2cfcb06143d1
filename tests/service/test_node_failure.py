"""Node failure: the shard's node is removed; it comes back elsewhere with its Redis state."""

from __future__ import annotations

from tests.chaos.drill import run_drill
from tests.service.test_outages import OwnRedis, own_redis  # noqa: F401 - the fixture


def test_shard_survives_the_loss_of_its_node(own_redis: OwnRedis) -> None:  # noqa: F811
    status, result = run_drill(
        "tests.chaos.node_failure", "--redis-url", f"redis://127.0.0.1:{own_redis.port}/0"
    )
    print(f"\nnode failure: {result}")
    assert status == 0 and result["ok"] and result["moved"], result
