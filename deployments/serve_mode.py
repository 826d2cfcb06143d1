"""Which Ray Serve mode this process runs under, read from its environment.

Serve's throughput-optimized mode and its HAProxy ingress are switched on by environment
variables on the processes `serve run` starts; `serve_config.yaml` cannot set them. A
service started without them answers single transactions several times slower
(BENCHMARKS.md, *ours* vs *ours-fast*), so it says so: in its log at start, in `/healthz`
and in `/v1/stats`. `fast_env` is the one definition of those variables for Python (`fraud
demo`, the benchmarks); the Makefile's `FAST_ENV` spells the same ones in shell.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

THROUGHPUT_OPTIMIZED = "RAY_SERVE_THROUGHPUT_OPTIMIZED"
HAPROXY = "RAY_SERVE_ENABLE_HA_PROXY"
HAPROXY_BINARY = "RAY_SERVE_HAPROXY_BINARY_PATH"
HAPROXY_METRICS = "RAY_SERVE_HAPROXY_METRICS_ENABLED"
DEBIAN_HAPROXY = Path("/usr/sbin/haproxy")


def fast_env(haproxy: Path | None = DEBIAN_HAPROXY) -> dict[str, str]:
    """The environment that starts Serve in throughput-optimized mode, with the HAProxy
    ingress where that binary exists."""
    env = {THROUGHPUT_OPTIMIZED: "1"}
    if haproxy is not None and haproxy.exists():
        env |= {
            HAPROXY: "1",
            HAPROXY_BINARY: str(haproxy),
            "RAY_SERVE_HAPROXY_NBTHREAD": "1",
            # Off: HAProxy would send a log line per request to the HAProxyManager actor,
            # which parses each into Serve's request metrics (BENCHMARKS.md, "Where the CPU
            # goes"); the Ingress records its own per-route request metrics.
            HAPROXY_METRICS: "0",
        }
    return env


def _on(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in {"1", "true", "yes"}


def serve_mode(env: Mapping[str, str] = os.environ) -> dict[str, object]:
    """`throughput_optimized`, `haproxy`, and, when the fast mode is off, what to set."""
    fast, haproxy = _on(env, THROUGHPUT_OPTIMIZED), _on(env, HAPROXY)
    mode: dict[str, object] = {"throughput_optimized": fast, "haproxy": haproxy}
    if not fast:
        mode["hint"] = (
            f"started without Serve's throughput-optimized mode: set {THROUGHPUT_OPTIMIZED}=1 "
            f"(and {HAPROXY}=1 {HAPROXY_BINARY}=/usr/sbin/haproxy) before `serve run`, "
            "or use `make serve`"
        )
    return mode
