"""A Ray head node of a test's own, started the way docs/operations.md starts one: `ray start
--head` from the project's environment, with token auth on, on free ports and its own
`--temp-dir`. It runs in its own process group, which is all that stopping it kills."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.groups import stop_groups

BIN = Path(sys.executable).parent  # the project's environment: its `ray` and `python`
WORKER_PORTS = (30100, 30400)  # outside Ray's default range and the kernel's ephemeral one


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Head:
    process: subprocess.Popen[bytes]
    temp_dir: Path
    dashboard: str  # the job server's address
    env: dict[str, str] = field(repr=False)  # what a client runs with (the token included)

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop the node's process group (ours alone: the node is its session's leader, so
        the group's id is its pid), then remove its temp dir."""
        stop_groups([self.process.pid], grace_s)
        self.process.wait(timeout=grace_s)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_head(num_cpus: int = 2, timeout_s: float = 90.0) -> Head:
    """The head, its job server answering. Its temp dir is short: Ray's socket paths under
    it must stay within the 107 bytes a Unix socket path may have."""
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-head-", dir="/tmp"))
    gcs, dash, client, nm, om, agent, agent_grpc, rt_env, metrics = _free_ports(9)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(16),
        RAY_USAGE_STATS_ENABLED="0",
    )
    args = [
        str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
        "--port", str(gcs), "--dashboard-port", str(dash), "--include-dashboard", "true",
        "--ray-client-server-port", str(client), "--node-manager-port", str(nm),
        "--object-manager-port", str(om), "--dashboard-agent-listen-port", str(agent),
        "--dashboard-agent-grpc-port", str(agent_grpc), "--runtime-env-agent-port", str(rt_env),
        "--metrics-export-port", str(metrics), "--min-worker-port", str(WORKER_PORTS[0]),
        "--max-worker-port", str(WORKER_PORTS[1]), "--num-cpus", str(num_cpus),
        "--temp-dir", str(temp_dir),
    ]  # fmt: skip
    log = (temp_dir / "head.log").open("wb")
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    head = Head(proc, temp_dir, f"http://127.0.0.1:{dash}", env)
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = (temp_dir / "head.log").read_text(errors="replace")[-3000:]
            head.stop()
            raise RuntimeError(f"the Ray head did not start:\n{tail}")
        try:
            auth = {"Authorization": f"Bearer {env['RAY_AUTH_TOKEN']}"}
            answer = httpx.get(f"{head.dashboard}/api/version", headers=auth, timeout=2)
            if answer.status_code == 200:
                return head
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
