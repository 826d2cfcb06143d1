"""Node failure: the shard's node is removed; it comes back elsewhere with its Redis state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.service.test_outages import OwnRedis, own_redis  # noqa: F401 - the fixture

REPO = Path(__file__).resolve().parents[2]


def test_shard_survives_the_loss_of_its_node(own_redis: OwnRedis) -> None:  # noqa: F811
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.chaos.node_failure",
            "--redis-url",
            f"redis://127.0.0.1:{own_redis.port}/0",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(lines[-1])
    print(f"\nnode failure: {result}")
    assert proc.returncode == 0 and result["ok"] and result["moved"], result
