"""How fast Ray notices a node that stopped answering, tuned for a fraud service.

Ray's GCS probes every raylet and marks a node dead after `failure_threshold` probes in a
row fail; only then are its actors (card and terminal shards among them) restarted on
other nodes. Ray's defaults (a probe every 3 s, each allowed 10 s, 5 misses) take about
15 s: every answer for a lost shard's cards is degraded for that long. A probe every second,
allowed a second, 5 misses: about 5 s, while a node must still miss five probes in a row to
be declared dead, which a busy raylet does not (BENCHMARKS.md, "Faults"). The GCS reads
these at start (the head node's environment; rayservice.yaml sets them there).
"""

from __future__ import annotations

from typing import Final

HEALTH_CHECK_ENV: Final = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "5",
}
