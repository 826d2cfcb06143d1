"""Host-failure drill on a real three-host Ray cluster (`tests.chaos.hosts`): the app
deployed with `serve deploy` of the repo's cluster config, traffic from the simulator's
replay as a Ray Job, and one worker host killed (`kill -9` of every process it runs) while
the traffic flows.

Host 0 runs Redis (state, rate limits) and the Ray head; hosts 1 and 2 are Ray workers. The
host killed is the worker holding the most card shards. Probes (a batch of 64 new cards
every half second) time how long the service takes to answer normally again. Afterwards
`fraud models shadow --apply` hot-swaps the config through token auth, and the job's
answers are compared with `fraud score`'s on the same stream.

Run as a separate process, as root: `python -m tests.chaos.cluster`. Prints one JSON line;
exits non-zero if a request was lost, the job failed or an online score differs.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import yaml

from deployments.serve_mode import fast_env
from tests.chaos.hosts import Host, HostBed

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REDIS_PORT = 6390
PROBE_CARDS = 64  # per probe: every card shard holds some of them
STREAM = {
    "n_customers": 200, "n_terminals": 400, "n_days": 16, "seed": 21,
    "compromised_terminals_per_day": 1, "card_testing_per_day": 1, "cards_per_block": 100,
}  # fmt: skip


def cluster_config(head: Host, keys_file: Path) -> dict[str, Any]:
    """serve_config.cluster.yaml with the test bed's Redis, key file and sizes."""
    config = yaml.safe_load((REPO / "serve_config.cluster.yaml").read_text())
    app = config["applications"][0]
    redis = f"redis://{head.address}:{REDIS_PORT}"
    app["args"]["state"]["redis_url"] = f"{redis}/0"
    app["args"]["state"]["snapshot_every"] = 200
    app["args"]["access"].update(keys_file=str(keys_file), rate_storage=f"{redis}/1")
    # Every answer is compared with offline: wait for a lost host's shards, not degrade
    # (test_faults.py's Redis app drills the deadline under a kill).
    app["args"].update(n_user_shards=4, n_terminal_shards=2, deadline_ms=60_000)
    for d in app["deployments"]:
        d["num_replicas"] = 2 if d["name"] == "Ingress" else 1
    return dict(config)


class Drill:
    def __init__(self, bed: HostBed, work: Path) -> None:
        self.bed, self.work = bed, work
        self.head, *self.workers = bed.up()
        self.env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        self.env.update(
            PATH=f"{BIN}{os.pathsep}{self.env.get('PATH', '')}",
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN=secrets.token_hex(16),
            FRAUD_ID_KEY=secrets.token_hex(32),
            RAY_USAGE_STATS_ENABLED="0",
        )
        self.env.update(fast_env())  # every node, as in production (rayservice.yaml)
        self.url = f"http://{self.head.address}:8000"
        self.api_key = ""

    def ray(self, *args: str, timeout_s: float = 120) -> str:
        """A Ray CLI command run on the head host, as an operator there would; its stdout
        (`ray list`'s JSON)."""
        proc = self.bed.run(self.head, [str(BIN / "ray"), *args], self.env, REPO, timeout_s)
        if proc.returncode != 0:
            raise RuntimeError(f"ray {' '.join(args[:3])} failed: {proc.stderr[-2000:]}")
        return proc.stdout

    def job_status(self, submission_id: str) -> str:
        """SUCCEEDED, FAILED, STOPPED, or RUNNING while not ended (read from what `ray job
        status` logs, on stderr)."""
        proc = self.bed.run(
            self.head,
            [str(BIN / "ray"), "job", "status", "--address", "http://127.0.0.1:8265",
             submission_id],
            self.env, REPO, 60,
        )  # fmt: skip
        out = proc.stdout + proc.stderr
        ended = {"' succeeded": "SUCCEEDED", "' failed": "FAILED", "' was stopped": "STOPPED"}
        return next((state for text, state in ended.items() if text in out), "RUNNING")

    def start(self) -> None:
        keys = self.work / "keys.json"
        made = self.bed.run(
            self.head,
            [str(BIN / "fraud"), "keys", "add", "drill", "--scope", "score", "--scope", "admin",
             "--scope", "analyst", "--rate", "100000/second", "--file", str(keys)],
            self.env, REPO, 60,
        )  # fmt: skip
        self.api_key = made.stdout.strip().splitlines()[-1]
        self.env["FRAUD_API_KEY"] = self.api_key  # every node's: the replay job reads it
        self.bed.spawn(
            self.head,
            ["redis-server", "--port", str(REDIS_PORT), "--bind", self.head.address, "--save",
             "", "--appendonly", "no", "--protected-mode", "no"],
            self.env, self.work / "redis.log", REPO,
        )  # fmt: skip
        self.bed.spawn(
            self.head,
            [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address",
             self.head.address, "--port", "6379", "--num-cpus", "2", "--temp-dir",
             str(self.work / "r0"), "--include-dashboard", "true"],
            self.env, self.work / "head.log", REPO,
        )  # fmt: skip
        self._wait(lambda: self._nodes() >= 1, 90, "the head")
        for i, host in enumerate(self.workers, start=1):
            self.bed.spawn(
                host,
                [str(BIN / "ray"), "start", "--block", "--address", f"{self.head.address}:6379",
                 "--node-ip-address", host.address, "--num-cpus", "2", "--temp-dir",
                 str(self.work / f"r{i}")],
                self.env, self.work / f"worker{i}.log", REPO,
            )  # fmt: skip
        self._wait(lambda: self._nodes() == 3, 90, "three nodes")
        self.config = config = self.work / "serve.yaml"
        config.write_text(yaml.safe_dump(cluster_config(self.head, keys), sort_keys=False))
        proc = self.bed.run(
            self.head,
            [str(BIN / "serve"), "deploy", str(config), "--address", "http://127.0.0.1:8265"],
            self.env, REPO, 120,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"serve deploy failed: {proc.stderr[-2000:]}")
        # The head's proxy: Serve drains the proxy of a node that holds no replica.
        self._wait(lambda: self._healthy(self.head), 180, "the app")

    def _nodes(self) -> int:
        try:
            out = self.ray("list", "nodes", "--format", "json", "--address",
                           f"{self.head.address}:6379", timeout_s=30)  # fmt: skip
            return sum(n["state"] == "ALIVE" for n in json.loads(out))
        except (RuntimeError, TimeoutError, ValueError):  # not up yet
            return 0

    def _healthy(self, host: Host) -> bool:
        try:
            return httpx.get(f"http://{host.address}:8000/healthz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    @staticmethod
    def _wait(ready: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not up within {timeout_s:.0f} s")
            time.sleep(1.0)

    def client(self) -> httpx.Client:
        auth = {"authorization": f"Bearer {self.api_key}"}
        return httpx.Client(base_url=self.url, headers=auth, timeout=30)

    def card_shard_hosts(self) -> dict[str, int]:
        """How many card shards each host's node holds."""
        address = f"{self.head.address}:6379"
        nodes = json.loads(self.ray("list", "nodes", "--format", "json", "--address", address))
        ip_of = {n["node_id"]: n["node_ip"] for n in nodes}
        actors = json.loads(
            self.ray("list", "actors", "--format", "json", "--detail", "--limit", "1000",
                     "--filter", "state=ALIVE", "--address", address)
        )  # fmt: skip
        counts: dict[str, int] = {}
        for a in actors:
            if str(a.get("name", "")).startswith("fraud:user:"):
                ip = ip_of.get(a["node_id"], "?")
                counts[ip] = counts.get(ip, 0) + 1
        return counts

    def alive_ips(self) -> dict[str, bool]:
        address = f"{self.head.address}:6379"
        nodes = json.loads(self.ray("list", "nodes", "--format", "json", "--address", address))
        alive: dict[str, bool] = {}
        for n in nodes:  # a dead node stays listed; a host has one live node at most
            alive[n["node_ip"]] = alive.get(n["node_ip"], False) or n["state"] == "ALIVE"
        return alive

    def shadow_by_models_apply(self, c: httpx.Client) -> str | None:
        """`fraud models shadow models/default --apply` on the head, as an operator there
        runs it: its `serve deploy` must pass token auth. The shadow version it serves."""
        proc = self.bed.run(
            self.head,
            [str(BIN / "fraud"), "models", "shadow", "models/default", "--config",
             str(self.config), "--apply"],
            self.env, REPO, 120,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"fraud models shadow --apply failed: {proc.stderr[-2000:]}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            version = c.get("/v1/live").json()["model"]["shadow_version"]
            if version:
                return str(version)
            time.sleep(1.0)
        return None

    def processed(self, c: httpx.Client) -> int:
        shards = c.get("/v1/stats").json()["shards"]
        return sum(s["transactions"] for s in shards if s["kind"] == "user")


def _probe(c: httpx.Client, round_: int) -> tuple[int | str, float]:
    body = {
        "transactions": [
            {"transaction_id": f"probe-{round_}-{i}", "user_id": f"probe-card-{i}",
             "terminal_id": "probe-terminal", "amount": 10.0,
             "timestamp": "2018-04-20T10:00:00"}
            for i in range(PROBE_CARDS)
        ]
    }  # fmt: skip
    t0 = time.monotonic()
    try:
        status: int | str = c.post("/v1/transactions/batch", json=body).status_code
    except httpx.HTTPError as e:
        status = type(e).__name__
    return status, time.monotonic() - t0


def offline_scores(stream: Path) -> pd.DataFrame:
    from cli.serve_config import served_thresholds
    from features.offline import feedback_from_labels
    from features.transactions import read_transactions
    from models.onnx import load_model
    from training.scoring import score_transactions

    tx = read_transactions(stream)
    tx = tx[tx["amount"] > 0]
    model = load_model(REPO / "models" / "default")
    thresholds = served_thresholds(model.card, REPO / "serve_config.cluster.yaml")
    scored = score_transactions(
        tx, model, thresholds, feedback=feedback_from_labels(tx, 7 * 86_400_000)
    )
    scored["transaction_id"] = scored["transaction_id"].astype(str)
    return scored.set_index("transaction_id")


def run(work: Path) -> dict[str, Any]:
    from simulator.config import SimulationConfig
    from simulator.distributed import generate_distributed

    bed = HostBed(3)
    result: dict[str, Any] = {"ok": False}
    try:
        t0 = time.monotonic()
        drill = Drill(bed, work)
        drill.start()
        result["cluster_up_s"] = round(time.monotonic() - t0, 1)
        health = httpx.get(f"{drill.url}/healthz", timeout=10).json()
        result["serve_mode"] = health.get("serve_mode")
        stream = work / "stream"
        stats = generate_distributed(SimulationConfig(**STREAM), str(stream), 1)  # type: ignore[arg-type]
        total = int(stats["transactions"])
        drill.ray(
            "job", "submit", "--address", "http://127.0.0.1:8265", "--no-wait",
            "--submission-id", "drill-replay", "--working-dir", ".", "--runtime-env",
            "runtime_env.yaml", "--", "python", "-m", "cli.main", "replay", "--input",
            str(stream), "--url", drill.url, "--concurrency", "2", "--batch", "8",
            "--retry-for", "180", "--json", str(work / "report.json"), "--answers",
            str(work / "answers.parquet"),
        )  # fmt: skip
        shards = drill.card_shard_hosts()
        result["card_shards_by_host"] = shards
        victim = max(drill.workers, key=lambda h: shards.get(h.address, 0))
        with drill.client() as c:
            drill._wait(lambda: drill.processed(c) >= total // 3, 240, "a third of the stream")
            result["processed_at_kill"] = drill.processed(c)
            killed_at = time.monotonic()
            bed.kill(victim)
            probes: list[tuple[float, int | str, float]] = []
            dead_at: float | None = None  # when Ray has marked the victim's node dead
            while time.monotonic() - killed_at < 150:
                status, took = _probe(c, len(probes))
                probes.append((round(time.monotonic() - killed_at, 2), status, round(took, 2)))
                if dead_at is None and not drill.alive_ips().get(victim.address, False):
                    dead_at = round(time.monotonic() - killed_at, 2)
                since = [p for p in probes if dead_at is not None and p[0] - p[2] >= dead_at]
                if len(since) >= 5 and all(p[1] == 200 and p[2] < 1.0 for p in since[-5:]):
                    break
                time.sleep(0.5)
        deadline = time.monotonic() + 60  # the restarted shards, placed on the other hosts
        while victim.address in (after := drill.card_shard_hosts()):
            if time.monotonic() > deadline:
                break
            time.sleep(1.0)
        result["card_shards_by_host_after"] = after
        result["victim_alive_after"] = drill.alive_ips().get(victim.address, False)
        bad = [p for p in probes if p[1] != 200 or p[2] >= 1.0]
        result["victim"] = victim.address
        result["node_marked_dead_s"] = dead_at
        result["recovery_s"] = max((p[0] for p in bad), default=0.0)  # the last slow answer
        result["probes"] = probes
        deadline = time.monotonic() + 300
        while True:
            status = drill.job_status("drill-replay")
            if status in ("SUCCEEDED", "FAILED", "STOPPED"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the replay job did not end within 300 s")
            time.sleep(2)
        result["job"] = status
        with drill.client() as c:
            result["shadow_after_models_apply"] = drill.shadow_by_models_apply(c)
        report = json.loads((work / "report.json").read_text())
        result["report"] = {k: report.get(k) for k in ("offered", "answered", "errors", "retries")}
        online = pd.read_parquet(work / "answers.parquet").set_index("transaction_id")
        scored = offline_scores(stream)
        offline = scored.loc[online.index]
        diff = np.abs(online["score"].to_numpy() - offline["score"].to_numpy())
        result["max_score_diff"] = float(diff.max())
        result["decisions_equal"] = float((online["decision"] == offline["decision"]).mean())
        zero = total - len(scored)
        result["refused_zero_amount"] = zero
        result["drill_s"] = round(time.monotonic() - t0, 1)
        result["ok"] = bool(
            result["job"] == "SUCCEEDED"
            and report["answered"] == total - zero
            and set(report["errors"]) <= {"422"}
            and result["max_score_diff"] < 1e-6
            and result["decisions_equal"] == 1.0
            and probes[-1][1] == 200
            and not result["victim_alive_after"]
            and result["shadow_after_models_apply"] is not None
            and victim.address not in after
            and sum(after.values()) == sum(shards.values())
        )
    except Exception as e:  # the drill reports what broke, and still tears down
        result["error"] = "".join(traceback.format_exception(e))[-3000:]
    finally:
        bed.down()
    return result


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="fr-", dir="/tmp"))  # short: Ray's socket paths
    result = run(work)
    if result["ok"]:
        shutil.rmtree(work, ignore_errors=True)
    else:
        result["logs"] = str(work)  # kept for a look at what broke
    print(json.dumps(result, default=str))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
