"""`fraud demo`: start the service on a local Ray cluster, replay a stream, report, stop.

The service is started exactly as a user would (`serve run serve_config.yaml`) in its own
process group, so stopping it ends the Ray cluster it started and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from rich.console import Console

from actors.paths import REPO_ROOT
from cli.kafka import KafkaBroker, fetch_jars
from cli.progress import replay_progress
from cli.serve_config import SERVE_CONFIG
from deployments.http.access import API_KEY_ENV, env_key_headers
from deployments.serve_mode import DEBIAN_HAPROXY, HAPROXY, fast_env
from deployments.stream.contract import KafkaConfig
from deployments.stream.kafka import ensure_topics
from features.transactions import read_transactions
from simulator.kafka_replay import KafkaReplayOptions, replay_to_kafka
from simulator.replay import ReplayOptions, replay_stream
from simulator.report import build_report, print_report

URL = "http://127.0.0.1:8000"


def demo_config(directory: Path, args: dict[str, Any] | None = None) -> Path:
    """serve_config.yaml with the state and the decision record kept in the demo's own,
    freshly emptied directories: a replayed stream reuses transaction ids, and a live
    service's state is not the demo's.
    `args`: app arguments to set on top (benchmarks compare settings this way)."""
    state, record = directory / "demo-state", directory / "demo-decisions"
    for folder in (state, record):
        shutil.rmtree(folder, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    doc = yaml.safe_load(SERVE_CONFIG.read_text())
    for application in doc["applications"]:
        if application["name"] == "fraud":
            application["args"].setdefault("state", {})["path"] = str(state.resolve())
            application["args"]["decision_record"] = {"path": str(record.resolve())}
            application["args"].update(args or {})
    path = directory / "demo-serve-config.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def start_service(
    console: Console,
    log_path: Path,
    config: Path = SERVE_CONFIG,
    fast: bool = True,
) -> subprocess.Popen[bytes]:
    """`serve run config` in its own session. `fast`: in Serve's throughput-optimized mode
    with the HAProxy ingress where Debian's haproxy is installed, as production runs it
    (`deployments.serve_mode.fast_env`); otherwise with Serve's defaults."""
    serve_bin = Path(sys.executable).with_name("serve")
    mode = fast_env() if fast else {}
    env = {**os.environ, "RAY_SERVE_LOG_TO_STDERR": "0", **mode}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if not fast:
        how = "Serve's defaults"
    elif HAPROXY in mode:
        how = "throughput-optimized, HAProxy ingress"
    else:
        how = f"throughput-optimized, Serve's own proxy: no {DEBIAN_HAPROXY} (apt install haproxy)"
    console.print(f"starting: serve run {config} ({how}; log: {log_path})")
    log = open(log_path, "wb")  # noqa: SIM115 - closed by the child's lifetime
    return subprocess.Popen(
        [str(serve_bin), "run", str(config)],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def wait_healthy(proc: subprocess.Popen[bytes], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve run exited with code {proc.returncode}")
        try:
            if httpx.get(f"{URL}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"service not healthy after {timeout_s:.0f} s")


def _haproxies(pid: int) -> list[psutil.Process]:
    """The HAProxy processes under `pid` (Serve's ingress, started by its manager actor)."""
    try:
        below = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    found = []
    for p in below:
        with contextlib.suppress(psutil.Error):
            if p.name() == "haproxy":
                found.append(p)
    return found


def stop_service(proc: subprocess.Popen[bytes], console: Console) -> None:
    """SIGINT first (serve run shuts Serve and its Ray cluster down), then force; then the
    HAProxy processes it had started, if any outlived it: one reloaded by Serve was seen to,
    holding the service's ports against the next start."""
    ingress = _haproxies(proc.pid)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for p in ingress:  # psutil checks each is still the process it found, not a reused pid
        with contextlib.suppress(psutil.Error):
            p.kill()
    console.print("service stopped")


def desk_summary(console: Console) -> dict[str, Any]:
    """What the analyst's desk saw during the replay (after the replicas' last report)."""
    time.sleep(1.0)
    live = httpx.get(f"{URL}/v1/live", headers=env_key_headers(), timeout=30).json()
    summary = {
        "decisions": live["decisions"],
        "open_reviews": live["reviews"]["open"],
        "outcomes": live["outcomes"],
        "latency_ms": live["latency_ms"],
    }
    o = live["outcomes"]
    console.print(
        f"analyst desk: {summary['open_reviews']:,} reviews open; labelled frauds caught "
        f"{o['frauds_caught']:,}, missed {o['frauds_missed']:,}; decisions {live['decisions']}; "
        f"the console at {URL}/dashboard/ while the service runs (fraud demo --keep-running)"
    )
    return summary


def start_broker(console: Console, directory: Path) -> KafkaBroker:
    """A Kafka broker of the demo's own (KRaft, fresh storage, free loopback ports)."""
    shutil.rmtree(directory, ignore_errors=True)
    fetch_jars()
    broker = KafkaBroker(directory, free_port(), free_port())
    pid = broker.start()
    console.print(f"kafka broker {broker.bootstrap} (pid {pid}, log {broker.log_file})")
    return broker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_demo(
    input_path: Path,
    log_dir: Path,
    concurrency: int,
    batch: int,
    keep_running: bool = False,
    source: str = "http",
) -> dict[str, Any]:
    """`source` http: the replay posts batches to the HTTP API; kafka: a broker of the
    demo's own, the service consuming its topic (stream.broker: kafka), the replay
    producing to it and reading the decisions topic."""
    console = Console()
    log_dir.mkdir(parents=True, exist_ok=True)
    broker = start_broker(console, log_dir.parent / "demo-kafka") if source == "kafka" else None
    args: dict[str, Any] = {}
    if broker is not None:
        kafka = KafkaConfig(bootstrap_servers=broker.bootstrap)
        args["stream"] = {"enabled": True, "broker": "kafka", "kafka": kafka.model_dump()}
    proc = start_service(console, log_dir / "serve.log", demo_config(log_dir.parent, args))
    try:
        wait_healthy(proc)
        console.print(f"service healthy: {httpx.get(f'{URL}/healthz').json()}")
        tx = read_transactions(input_path)
        if broker is not None:
            ensure_topics(kafka)
            kopts = KafkaReplayOptions(bootstrap_servers=broker.bootstrap, max_seconds=600)
            with replay_progress(console) as progress:
                result = replay_to_kafka(tx, kopts, progress)
        else:
            opts = ReplayOptions(
                url=URL,
                concurrency=concurrency,
                batch=batch,
                max_seconds=600,
                api_key=os.environ.get(API_KEY_ENV),
            )
            with replay_progress(console) as progress:
                result = asyncio.run(replay_stream(tx, opts, progress))
        report = build_report(result, len(tx))
        print_report(report, console)
        report["desk"] = desk_summary(console)
        if keep_running:
            console.print(f"the service stays up: {URL}/dashboard/ (Ctrl-C stops it)")
            with contextlib.suppress(KeyboardInterrupt):
                proc.wait()
        return report
    finally:
        stop_service(proc, console)
        if broker is not None:
            broker.stop()
            console.print("kafka broker stopped")
