"""Host-failure drill on a real three-host Ray cluster (`tests.chaos.hosts`): the app
deployed with `serve deploy` of the repo's cluster config, traffic from the simulator's
replay as a Ray Job at a steady rate, each request asking for its answer within 250 ms
(`x-fraud-deadline-ms`), and two faults while the traffic flows:

1. one worker host killed (`kill -9` of every process it runs): its peers see resets;
2. the other worker's link cut (every packet dropped, its processes left running), then
   restored once Ray has declared the node dead: its peers see silence.

Host 0 runs Redis (state, rate limits) and the Ray head; hosts 1 and 2 are Ray workers. The
host killed is the worker holding the most card shards. Probes (a batch of 64 new cards
every half second, no deadline) time how long the service takes to answer normally again.
Afterwards `fraud models shadow --apply` hot-swaps the config through token auth; the card
shards are killed and rebuilt from Redis (what a host that came back could have written
late would show there); one more transaction per card is scored and compared with offline
scoring of the whole stream; and every answer is looked up in the decision record.

Answers given without some state (degraded: past the deadline while a shard was away) are
counted, not compared; every other answer must equal `fraud score`'s, except on a card that
had a degraded answer shortly before it (its late step may not have been applied yet when
another replica answered: counted as `after_degraded`).

Run as a separate process, as root: `python -m tests.chaos.cluster`. Prints one JSON line;
exits non-zero if a request was lost, the job failed or an online score differs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import yaml

from deployments.failure_detection import HEALTH_CHECK_ENV
from deployments.serve_mode import fast_env
from tests.chaos.hosts import Host, HostBed

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REDIS_PORT = 6390
PROBE_CARDS = 64  # per probe: every card shard holds some of them
RATE = 70  # transactions/s the replay offers: the stream lasts ~90 s
DEADLINE_MS = 250
STREAM = {
    "n_customers": 200, "n_terminals": 400, "n_days": 16, "seed": 21,
    "compromised_terminals_per_day": 1, "card_testing_per_day": 1, "cards_per_block": 100,
}  # fmt: skip


def cluster_config(redis_host: Host, keys_file: Path, record: Path) -> dict[str, Any]:
    """serve_config.cluster.yaml with the test bed's Redis, key file, decision record (the
    hosts share this machine's filesystem) and sizes."""
    config = yaml.safe_load((REPO / "serve_config.cluster.yaml").read_text())
    app = config["applications"][0]
    redis = f"redis://{redis_host.address}:{REDIS_PORT}"
    app["args"]["state"]["redis_url"] = f"{redis}/0"
    app["args"]["state"]["snapshot_every"] = 200
    app["args"]["access"].update(keys_file=str(keys_file), rate_storage=f"{redis}/1")
    app["args"]["decision_record"] = {"path": str(record), "flush_seconds": 1.0}
    app["args"].update(n_user_shards=4, n_terminal_shards=2)
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
        self.env.update(HEALTH_CHECK_ENV)  # the GCS's failure detection, as rayservice.yaml
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

    def make_key(self, host: Host) -> Path:
        """An API key for the drill (every scope it uses), in a key file every node reads;
        the clients' environment gets the key."""
        keys = self.work / "keys.json"
        made = self.bed.run(
            host,
            [str(BIN / "fraud"), "keys", "add", "drill", "--scope", "score", "--scope", "admin",
             "--scope", "analyst", "--rate", "100000/second", "--file", str(keys)],
            self.env, REPO, 60,
        )  # fmt: skip
        self.api_key = made.stdout.strip().splitlines()[-1]
        self.env["FRAUD_API_KEY"] = self.api_key  # every node's: the replay job reads it
        return keys

    def start_redis(self, host: Host) -> None:
        self.bed.spawn(
            host,
            ["redis-server", "--port", str(REDIS_PORT), "--bind", host.address, "--save",
             "", "--appendonly", "no", "--protected-mode", "no"],
            self.env, self.work / "redis.log", REPO,
        )  # fmt: skip

    def start_worker(self, host: Host, name: str, cpus: int) -> None:
        """`ray start` joining the head, with its own temp dir and log."""
        self.bed.spawn(
            host,
            [str(BIN / "ray"), "start", "--block", "--address", f"{self.head.address}:6379",
             "--node-ip-address", host.address, "--num-cpus", str(cpus), "--temp-dir",
             str(self.work / name)],
            self.env, self.work / f"{name}.log", REPO,
        )  # fmt: skip

    def deploy(self, redis_host: Host, keys: Path, front: Host) -> None:
        """`serve deploy` of the cluster config from the head, then wait until `front`'s
        proxy answers (Serve drains the proxy of a node that holds no replica)."""
        self.config = config = self.work / "serve.yaml"
        self.record = self.work / "decisions"
        config.write_text(
            yaml.safe_dump(cluster_config(redis_host, keys, self.record), sort_keys=False)
        )
        proc = self.bed.run(
            self.head,
            [str(BIN / "serve"), "deploy", str(config), "--address", "http://127.0.0.1:8265"],
            self.env, REPO, 120,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"serve deploy failed: {proc.stderr[-2000:]}")
        self._wait(lambda: self._healthy(front), 180, "the app")

    def start(self) -> None:
        keys = self.make_key(self.head)
        self.start_redis(self.head)
        self.bed.spawn(
            self.head,
            [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address",
             self.head.address, "--port", "6379", "--num-cpus", "2", "--temp-dir",
             str(self.work / "r0"), "--include-dashboard", "true"],
            self.env, self.work / "head.log", REPO,
        )  # fmt: skip
        self._wait(lambda: self._nodes() >= 1, 90, "the head")
        for i, host in enumerate(self.workers, start=1):
            self.start_worker(host, f"r{i}", 2)
        self._wait(lambda: self._nodes() == 3, 90, "three nodes")
        self.deploy(self.head, keys, self.head)

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

    def marked_dead_at(self, host: Host) -> float | None:
        """When the GCS declared `host`'s node dead (Unix seconds), from its own log line:
        polling `ray list nodes` on a loaded machine lags by seconds."""
        logs = self.work / "r0" / "session_latest" / "logs" / "gcs_server.out"
        pattern = re.compile(
            rf"^\[(\S+ \S+) .*address: {re.escape(host.address)} .*has been marked dead"
        )
        for line in logs.read_text(errors="replace").splitlines():
            match = pattern.match(line)
            if match:
                return dt.datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        return None

    def rebuild_card_shards(self) -> int:
        """Kill every card shard actor (Ray restarts them, and each rebuilds its state from
        Redis): what a host that came back could have written there late shows up now.
        Returns how many were killed, once they answer again."""
        code = (
            "import ray\n"
            f"ray.init(address='{self.head.address}:6379', logging_level='ERROR')\n"
            "names = [(a['name'], a['namespace']) for a in "
            "ray.util.list_named_actors(all_namespaces=True) "
            "if a['name'].startswith('fraud:user:')]\n"
            "for name, ns in names:\n"
            "    ray.kill(ray.get_actor(name, namespace=ns), no_restart=False)\n"
            "print(len(names))\n"
        )
        proc = self.bed.run(self.head, [sys.executable, "-c", code], self.env, REPO, 120)
        if proc.returncode != 0:
            raise RuntimeError(f"killing the card shards failed: {proc.stderr[-2000:]}")
        return int(proc.stdout.strip().splitlines()[-1])

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


class Probes:
    """Probe rounds numbered across faults (each probe's ids are new)."""

    def __init__(self) -> None:
        self.rounds = 0

    def until_recovered(
        self, drill: Drill, c: httpx.Client, host: Host, started: float
    ) -> dict[str, Any]:
        """Probe every half second after a fault on `host` until Ray has declared its node
        dead and five probes in a row since then were answered 200 within a second (at
        most 150 s). What was seen: probes (seconds after the fault, status, seconds it
        took), when the node was marked dead, and the last slow answer (recovery)."""
        probes: list[tuple[float, int | str, float]] = []
        marked: list[float] = []  # when Ray had the node dead, polled apart from the probes

        def watch() -> None:
            while not marked and time.monotonic() - started < 150:
                if not drill.alive_ips().get(host.address, False):
                    marked.append(round(time.monotonic() - started, 2))
                time.sleep(0.5)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        while time.monotonic() - started < 150:
            status, took = _probe(c, self.rounds)
            self.rounds += 1
            probes.append((round(time.monotonic() - started, 2), status, round(took, 2)))
            dead_at = marked[0] if marked else None
            since = [p for p in probes if dead_at is not None and p[0] - p[2] >= dead_at]
            if len(since) >= 5 and all(p[1] == 200 and p[2] < 1.0 for p in since[-5:]):
                break
            time.sleep(0.5)
        watcher.join(timeout=10)
        bad = [p for p in probes if p[1] != 200 or p[2] >= 1.0]
        return {
            "node_marked_dead_s": marked[0] if marked else None,
            "recovery_s": max((p[0] for p in bad), default=0.0),  # the last slow answer
            "probes": probes,
        }


def offline_scores(stream: Path, extra: pd.DataFrame | None = None) -> pd.DataFrame:
    from cli.serve_config import served_thresholds
    from features.offline import feedback_from_labels
    from features.transactions import read_transactions
    from models.onnx import load_model
    from training.scoring import score_transactions

    tx = read_transactions(stream)
    tx = tx[tx["amount"] > 0]
    if extra is not None:
        tx = pd.concat([tx, extra[tx.columns]], ignore_index=True)
    model = load_model(REPO / "models" / "default")
    thresholds = served_thresholds(model.card, REPO / "serve_config.cluster.yaml")
    scored = score_transactions(
        tx, model, thresholds, feedback=feedback_from_labels(tx, 7 * 86_400_000)
    )
    scored["transaction_id"] = scored["transaction_id"].astype(str)
    return scored.set_index("transaction_id")


def next_per_card(stream: Path, tag: str = "next", seconds: int = 1) -> pd.DataFrame:
    """One more transaction per card, `seconds` after the stream's last, at the card's last
    terminal: scored after the faults, it shows whether every card's (and terminal's)
    state holds exactly what offline replay of the whole stream holds."""
    from features.transactions import read_transactions

    tx = read_transactions(stream)
    last = tx.sort_values("timestamp", kind="stable").groupby("user_id", sort=False).tail(1)
    out = last.copy()
    out["transaction_id"] = [f"{tag}-{u}" for u in out["user_id"].astype(str)]
    # Seconds after the last: the replay has sent every label due by then, and no other.
    out["timestamp"] = tx["timestamp"].max() + pd.Timedelta(seconds=seconds)
    out["amount"] = 42.0
    out["is_fraud"] = 0
    return out.reset_index(drop=True)


def _scored(c: httpx.Client, txs: pd.DataFrame) -> pd.DataFrame:
    """The service's answers, with features, to these transactions sent as one batch."""
    from simulator.replay import tx_bodies

    r = c.post(
        "/v1/transactions/batch",
        params={"include_features": "true"},
        json={"transactions": tx_bodies(txs)},
    )
    r.raise_for_status()
    return pd.DataFrame(r.json()["results"]).set_index("transaction_id")


def cards(stream: Path) -> pd.DataFrame:
    """Each transaction's card and terminal, by transaction id."""
    from features.transactions import read_transactions

    tx = read_transactions(stream)
    return pd.DataFrame(
        {"card": tx["user_id"].astype(str).to_numpy(),
         "terminal": tx["terminal_id"].astype(str).to_numpy()},
        index=tx["transaction_id"].astype(str),
    )  # fmt: skip


def compare(online: pd.DataFrame, offline: pd.DataFrame, card_of: pd.DataFrame) -> dict[str, Any]:
    """Online answers against offline scores: degraded ones counted apart, and so is a
    mismatch on a card, or at a terminal, that had a degraded answer (`after_degraded`)."""
    offline = offline.loc[online.index]
    degraded = online["degraded_reason"].notna().to_numpy()
    diff = np.abs(online["score"].to_numpy() - offline["score"].to_numpy())
    wrong = (diff > 1e-6) | (online["decision"].to_numpy() != offline["decision"].to_numpy())
    wrong &= ~degraded
    cards = card_of.loc[online.index, "card"].to_numpy()
    terminals = card_of.loc[online.index, "terminal"].to_numpy()
    tainted = {c for c, d in zip(cards, degraded, strict=True) if d}
    late = {t for t, d in zip(terminals, degraded, strict=True) if d}
    after = np.array([c in tainted or t in late for c, t in zip(cards, terminals, strict=True)])
    after &= wrong
    return {
        "compared": int((~degraded).sum()),
        "degraded": int(degraded.sum()),
        "degraded_reasons": online["degraded_reason"].value_counts().to_dict(),
        "mismatched": int((wrong & ~after).sum()),
        "after_degraded": int(after.sum()),
        "max_score_diff": float(diff[~degraded & ~after].max()) if (~degraded).any() else 0.0,
        "mismatched_examples": [
            {"id": i, "online": float(o), "offline": float(f), "card": c, "terminal": t}
            for i, o, f, c, t in zip(
                online.index[wrong & ~after],
                online["score"].to_numpy()[wrong & ~after],
                offline["score"].to_numpy()[wrong & ~after],
                cards[wrong & ~after],
                terminals[wrong & ~after],
                strict=True,
            )
        ][:5],
    }


def wrong_features(
    answers: pd.DataFrame,
    offline: pd.DataFrame,
    card_of: pd.DataFrame,
    replayed: pd.DataFrame,
    sent: pd.DataFrame,
) -> dict[str, Any]:
    """Where online state differs from offline after the faults: on cards untouched by a
    degraded answer (none of their own, none at the terminal of their next transaction),
    and on the others; for a few, the features that differ."""
    rows = []
    degraded = replayed["degraded_reason"].notna()
    touched = card_of.reindex(degraded.index[degraded])
    cards, terminals = set(touched["card"]), set(touched["terminal"])
    for tx_id, answered in answers["features"].items():
        features = {k: float("nan") if v is None else v for k, v in answered.items()}
        want = offline.loc[str(tx_id)]
        diff = {
            k: [v, float(want[k])]
            for k, v in features.items()
            if not (v == want[k] or (v != v and want[k] != want[k]))  # NaN equals NaN here
            and abs(float(v) - float(want[k])) > 1e-9
        }
        if diff:
            card = str(tx_id).removeprefix("next-")
            mine = card_of.index[card_of["card"] == card]
            terminal = str(sent.loc[str(tx_id), "terminal_id"])
            rows.append({
                "card": card, "features": diff,
                "degraded_answers": int(degraded.reindex(mine, fill_value=False).sum()),
                "touched": card in cards or terminal in terminals,
            })  # fmt: skip
    return {
        "cards": sum(not r["touched"] for r in rows),
        "after_degraded": sum(r["touched"] for r in rows),
        "examples": rows[:5],
    }


def read_replay(work: Path, result: dict[str, Any]) -> tuple[dict[str, Any], pd.DataFrame]:
    """The replay's report and its answers (by transaction id); its summary and the share
    answered within the deadline and within a second go into `result`."""
    report: dict[str, Any] = json.loads((work / "report.json").read_text())
    keys = ("offered", "answered", "errors", "retries", "degraded", "latency_ms")
    result["report"] = {k: report.get(k) for k in keys}
    online = pd.read_parquet(work / "answers.parquet").set_index("transaction_id")
    latency = online["latency_ms"].to_numpy()
    result["answered_within_ms"] = {
        str(ms): round(float((latency <= ms).mean()), 4) for ms in (DEADLINE_MS, 1000)
    }
    return report, online


def degraded_count(answers: pd.DataFrame) -> int:
    """How many of these answers were degraded."""
    degraded = answers["degraded"] if "degraded" in answers else pd.Series([])
    return int(degraded.fillna(False).astype(bool).sum())


def unrecorded(drill: Drill, answered: set[str]) -> int:
    """How many answered transactions the decision record lacks once it has caught up.

    A live replica flushes every second here; the journal of a replica that died is written
    by another once nothing was appended to it for `ORPHAN_AFTER_MS` (20 s) and that
    replica's next adoption round comes (every ~5 s). So a replica killed near the end of the
    replay is in the record up to ~30 s later: read until nothing lacks, for up to 45 s."""
    from actors.store.decisions import DecisionStore

    deadline = time.monotonic() + 45
    while True:
        time.sleep(3)
        record = DecisionStore.at(str(drill.record)).read()
        missing = len(answered - set(record.column("transaction_id").to_pylist()))
        if missing == 0 or time.monotonic() > deadline:
            return missing


def make_stream(work: Path, spec: dict[str, Any]) -> tuple[Path, int]:
    """The simulator's labelled stream for a drill, in `work`, and how many transactions."""
    from simulator.config import SimulationConfig
    from simulator.distributed import generate_distributed

    stream = work / "stream"
    stats = generate_distributed(SimulationConfig(**spec), str(stream), 1)
    return stream, int(stats["transactions"])


def run(work: Path) -> dict[str, Any]:
    bed = HostBed(3)
    result: dict[str, Any] = {"ok": False}
    try:
        t0 = time.monotonic()
        drill = Drill(bed, work)
        drill.start()
        result["cluster_up_s"] = round(time.monotonic() - t0, 1)
        health = httpx.get(f"{drill.url}/healthz", timeout=10).json()
        result["serve_mode"] = health.get("serve_mode")
        stream, total = make_stream(work, STREAM)
        drill.ray(
            "job", "submit", "--address", "http://127.0.0.1:8265", "--no-wait",
            "--submission-id", "drill-replay", "--working-dir", ".", "--runtime-env",
            "runtime_env.yaml", "--", "python", "-m", "cli.main", "replay", "--input",
            str(stream), "--url", drill.url, "--concurrency", "2", "--batch", "8",
            "--rate", str(RATE), "--deadline-ms", str(DEADLINE_MS), "--retry-for", "180",
            "--json", str(work / "report.json"), "--answers", str(work / "answers.parquet"),
        )  # fmt: skip
        shards = drill.card_shard_hosts()
        result["card_shards_by_host"] = shards
        victim = max(drill.workers, key=lambda h: shards.get(h.address, 0))
        other = next(h for h in drill.workers if h != victim)
        result["victim"], result["cut_host"] = victim.address, other.address
        probes = Probes()
        with drill.client() as c:
            # 1. A worker host dies.
            drill._wait(lambda: drill.processed(c) >= total // 4, 240, "a quarter of the stream")
            result["processed_at_kill"] = drill.processed(c)
            killed_at, killed_wall = time.monotonic(), time.time()
            bed.kill(victim)
            result["kill"] = probes.until_recovered(drill, c, victim, killed_at)
            deadline = time.monotonic() + 60  # the restarted shards, placed on the others
            while victim.address in (after := drill.card_shard_hosts()):
                if time.monotonic() > deadline:
                    break
                time.sleep(1.0)
            result["card_shards_by_host_after_kill"] = after
            # 2. The other worker goes silent (a partition), then comes back.
            drill._wait(lambda: drill.processed(c) >= total * 3 // 5, 240, "3/5 of the stream")
            result["processed_at_cut"] = drill.processed(c)
            cut_at, cut_wall = time.monotonic(), time.time()
            bed.cut(other)
            result["cut"] = probes.until_recovered(drill, c, other, cut_at)
            bed.restore(other)
            result["cut"]["restored_s"] = round(time.monotonic() - cut_at, 2)
            time.sleep(5)  # what the host's processes do once they hear the others again
            result["cut_alive_after_restore"] = drill.alive_ips().get(other.address, False)
        for fault, host, wall in (("kill", victim, killed_wall), ("cut", other, cut_wall)):
            marked = drill.marked_dead_at(host)
            result[fault]["gcs_marked_dead_s"] = None if marked is None else round(marked - wall, 2)
        deadline = time.monotonic() + 300
        while True:
            status = drill.job_status("drill-replay")
            if status in ("SUCCEEDED", "FAILED", "STOPPED"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the replay job did not end within 300 s")
            time.sleep(2)
        result["job"] = status
        after = drill.card_shard_hosts()
        result["card_shards_by_host_after"] = after
        with drill.client() as c:
            result["shadow_after_models_apply"] = drill.shadow_by_models_apply(c)
            # Once before the rebuild, once after: a card wrong in both never got a
            # transaction; one wrong only after lost it in its checkpoints or journal.
            before = next_per_card(stream, "before", 1)
            before_online = _scored(c, before)
            result["card_shards_rebuilt"] = drill.rebuild_card_shards()
            following = next_per_card(stream, "next", 2)
            next_online = _scored(c, following)
        report, online = read_replay(work, result)
        both = pd.concat([before, following], ignore_index=True)
        scored = offline_scores(stream, both)
        result["online_vs_offline"] = compare(online, scored, cards(stream))
        next_diff = np.abs(
            next_online["score"].to_numpy() - scored.loc[next_online.index, "score"].to_numpy()
        )
        result["next_per_card_max_diff"] = float(next_diff.max())
        result["next_per_card_wrong"] = wrong_features(
            next_online, scored, cards(stream), online, following.set_index("transaction_id")
        )
        result["before_rebuild_wrong"] = wrong_features(
            before_online, scored, cards(stream), online, before.set_index("transaction_id")
        )
        result["next_per_card_degraded"] = degraded_count(next_online)
        answered = set(online.index) | set(next_online.index) | set(before_online.index)
        result["missing_from_record"] = unrecorded(drill, answered)
        zero = total - (len(scored) - len(both))
        result["refused_zero_amount"] = zero
        result["drill_s"] = round(time.monotonic() - t0, 1)
        versus = result["online_vs_offline"]
        result["ok"] = bool(
            result["job"] == "SUCCEEDED"
            and report["answered"] == total - zero
            and set(report["errors"]) <= {"422"}
            and versus["mismatched"] == 0
            and result["next_per_card_wrong"]["cards"] == 0
            and result["before_rebuild_wrong"]["cards"] == 0
            and result["next_per_card_degraded"] == 0
            and result["missing_from_record"] == 0
            and result["kill"]["probes"][-1][1] == 200
            and result["cut"]["node_marked_dead_s"] is not None
            and not drill.alive_ips().get(victim.address, False)
            and not result["cut_alive_after_restore"]
            and result["shadow_after_models_apply"] is not None
            and victim.address not in after
            and other.address not in after
            and sum(after.values()) == sum(shards.values())
        )
    except Exception as e:  # the drill reports what broke, and still tears down
        result["error"] = "".join(traceback.format_exception(e))[-3000:]
    finally:
        bed.down()
    return result


def drill_main(run: Callable[[Path], dict[str, Any]], prefix: str) -> int:
    """Run a drill in a work folder of its own; print its result as one JSON line, and
    keep the folder (logs) only when it failed. Exit status 0 when the drill held."""
    work = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))  # short: Ray's socket paths
    result = run(work)
    if result["ok"]:
        shutil.rmtree(work, ignore_errors=True)
    else:
        result["logs"] = str(work)  # kept for a look at what broke
    print(json.dumps(result, default=str))
    return 0 if result["ok"] else 1


def main() -> int:
    return drill_main(run, "fr-")


if __name__ == "__main__":
    raise SystemExit(main())
