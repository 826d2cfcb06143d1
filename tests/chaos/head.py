"""Head-node loss drill with GCS fault tolerance, on a real Ray cluster of network-namespace
hosts (`tests.chaos.hosts`), as Ray documents it for `ray start`: the head's GCS keeps its
tables in an external Redis (`RAY_REDIS_ADDRESS`), so a new head started at the same address
reloads them, the worker's processes live through the outage, and Serve's controller comes
back on the new head with the app it had.

Host 0 runs Redis (the GCS's tables, the app's state and rate limits) and the client: the
simulator's replay at a steady rate, each request asking for its answer within 250 ms
(`x-fraud-deadline-ms`), sent to the worker's proxy (the load balancer in front of a
cluster drops the head's once it stops answering). Host 1 is the head, with no CPUs as in
rayservice.yaml, so the cluster config's replicas and shard actors (a tenth of a CPU each)
all run on host 2, the worker.

A third of the way through the stream every process on the head host is killed; a new
head starts there five seconds later (a pod restarted by its controller). Probes (a batch
of new cards every half second, no deadline) time how long the service takes to answer
normally again. Afterwards one more transaction per card is scored and compared with
offline scoring of the whole stream, and every answer is looked up in the decision record.

Run as a separate process, as root: `python -m tests.chaos.head`. Prints one JSON line;
exits non-zero if a request was lost, an online score differs or a decision is missing.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from tests.chaos.cluster import (
    BIN,
    DEADLINE_MS,
    RATE,
    REDIS_PORT,
    REPO,
    Drill,
    _probe,
    _scored,
    cards,
    compare,
    degraded_count,
    drill_main,
    make_stream,
    next_per_card,
    offline_scores,
    read_replay,
    unrecorded,
    wrong_features,
)
from tests.chaos.hosts import HostBed

STREAM = {
    "n_customers": 200, "n_terminals": 400, "n_days": 10, "seed": 23,
    "compromised_terminals_per_day": 1, "card_testing_per_day": 1, "cards_per_block": 100,
}  # fmt: skip
DOWN_S = 5.0  # between the head's death and its replacement's start


class HeadDrill(Drill):
    """Hosts: Redis and the client; the head; one worker."""

    def __init__(self, bed: HostBed, work: Path) -> None:
        super().__init__(bed, work)
        self.store, self.head, self.worker = bed.hosts
        self.workers = [self.worker]
        self.url = f"http://{self.worker.address}:8000"
        self.heads = 0

    def start_head(self) -> None:
        """`ray start --head` with the GCS's tables in the external Redis; each start its
        own temp dir (its logs kept apart)."""
        env = {**self.env, "RAY_REDIS_ADDRESS": f"{self.store.address}:{REDIS_PORT}"}
        self.bed.spawn(
            self.head,
            [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address",
             self.head.address, "--port", "6379", "--num-cpus", "0", "--temp-dir",
             str(self.work / f"head{self.heads}"), "--include-dashboard", "true"],
            env, self.work / f"head{self.heads}.log", REPO,
        )  # fmt: skip
        self.heads += 1

    def start(self) -> None:
        keys = self.make_key(self.store)
        self.start_redis(self.store)
        self.start_head()
        self._wait(lambda: self._nodes() >= 1, 90, "the head")
        self.start_worker(self.worker, "worker", 4)
        self._wait(lambda: self._nodes() == 2, 90, "two nodes")
        self.deploy(self.store, keys, self.worker)


def head_loss(drill: HeadDrill, c: httpx.Client) -> dict[str, Any]:
    """Kill the head host, start a new head DOWN_S later, and probe every half second until
    the GCS answers again and five probes in a row since then were answered 200 within a
    second (at most 150 s). What was seen, in seconds after the kill."""
    started = time.monotonic()
    probes: list[tuple[float, int | str, float]] = []
    back: list[float] = []  # when the new head's GCS listed two live nodes

    def watch() -> None:
        time.sleep(DOWN_S)
        drill.start_head()
        while time.monotonic() - started < 150:
            if drill._nodes() >= 2:
                back.append(round(time.monotonic() - started, 2))
                return
            time.sleep(0.5)

    killed_at = time.time()
    drill.bed.kill(drill.head)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    rounds = 0
    while time.monotonic() - started < 150:
        status, took = _probe(c, 10_000 + rounds)
        rounds += 1
        probes.append((round(time.monotonic() - started, 2), status, round(took, 2)))
        since = [p for p in probes if back and p[0] - p[2] >= back[0]]
        if len(since) >= 5 and all(p[1] == 200 and p[2] < 1.0 for p in since[-5:]):
            break
        time.sleep(0.5)
    watcher.join(timeout=30)
    bad = [p for p in probes if p[1] != 200 or p[2] >= 1.0]
    return {
        "killed_at": killed_at,
        "new_head_started_s": DOWN_S,
        "gcs_back_s": back[0] if back else None,
        "recovery_s": max((p[0] for p in bad), default=0.0),  # the last slow answer
        "probes_failed": len([p for p in probes if p[1] != 200]),
        "probes": probes,
    }


def by_phase(online: pd.DataFrame, head: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Answers and the share within the deadline, by when their request was sent: before the
    kill, while no head ran, while the new one started, and after the service recovered."""
    killed = float(head["killed_at"])
    back = head["gcs_back_s"] if head["gcs_back_s"] is not None else head["recovery_s"]
    edges = [
        ("before", -np.inf, 0.0),
        ("no_head", 0.0, float(head["new_head_started_s"])),
        ("head_starting", float(head["new_head_started_s"]), float(back)),
        ("recovering", float(back), max(float(head["recovery_s"]), float(back))),
        ("after", max(float(head["recovery_s"]), float(back)), np.inf),
    ]
    since = online["sent_at"].to_numpy() - killed
    latency = online["latency_ms"].to_numpy()
    out: dict[str, dict[str, float]] = {}
    for name, lo, hi in edges:
        inside = (since >= lo) & (since < hi)
        if inside.any():
            out[name] = {
                "answers": int(inside.sum()),
                "within_deadline": round(float((latency[inside] <= DEADLINE_MS).mean()), 4),
                "p50_ms": round(float(np.median(latency[inside])), 1),
            }
    return out


def controller_restarted(drill: HeadDrill) -> bool:
    """Serve's controller alive on the new head (it asks for the head's resource)."""
    out = drill.ray(
        "list", "actors", "--format", "json", "--filter", "state=ALIVE", "--limit", "1000",
        "--address", f"{drill.head.address}:6379",
    )  # fmt: skip
    return any(a.get("class_name") == "ServeController" for a in json.loads(out))


def run(work: Path) -> dict[str, Any]:
    bed = HostBed(3)
    result: dict[str, Any] = {"ok": False}
    try:
        t0 = time.monotonic()
        drill = HeadDrill(bed, work)
        drill.start()
        result["cluster_up_s"] = round(time.monotonic() - t0, 1)
        stream, total = make_stream(work, STREAM)
        replay = bed.spawn(
            drill.store,
            [str(BIN / "fraud"), "replay", "--input", str(stream), "--url", drill.url,
             "--concurrency", "2", "--batch", "8", "--rate", str(RATE), "--deadline-ms",
             str(DEADLINE_MS), "--retry-for", "180", "--json", str(work / "report.json"),
             "--answers", str(work / "answers.parquet")],
            drill.env, work / "replay.log", REPO,
        )  # fmt: skip
        result["head_host"] = drill.head.address
        result["card_shards_by_host"] = drill.card_shard_hosts()
        with drill.client() as c:
            drill._wait(lambda: drill.processed(c) >= total // 3, 240, "a third of the stream")
            result["processed_at_kill"] = drill.processed(c)
            result["head"] = head_loss(drill, c)
        result["controller_restarted"] = controller_restarted(drill)
        result["card_shards_by_host_after"] = drill.card_shard_hosts()
        result["replay_exit"] = replay.wait(timeout=300)
        with drill.client() as c:
            following = next_per_card(stream, "next", 1)
            next_online = _scored(c, following)
        report, online = read_replay(work, result)
        result["within_deadline_by_phase"] = by_phase(online, result["head"])
        scored = offline_scores(stream, following)
        result["online_vs_offline"] = compare(online, scored, cards(stream))
        next_diff = np.abs(
            next_online["score"].to_numpy() - scored.loc[next_online.index, "score"].to_numpy()
        )
        result["next_per_card_max_diff"] = float(next_diff.max())
        result["next_per_card_wrong"] = wrong_features(
            next_online, scored, cards(stream), online, following.set_index("transaction_id")
        )
        result["next_per_card_degraded"] = degraded_count(next_online)
        result["missing_from_record"] = unrecorded(
            drill, set(online.index) | set(next_online.index)
        )
        zero = total - (len(scored) - len(following))
        result["refused_zero_amount"] = zero
        result["drill_s"] = round(time.monotonic() - t0, 1)
        versus = result["online_vs_offline"]
        result["ok"] = bool(
            result["replay_exit"] == 0
            and report["answered"] == total - zero
            and set(report["errors"]) <= {"422"}
            and versus["mismatched"] == 0
            and result["next_per_card_wrong"]["cards"] == 0
            and result["next_per_card_degraded"] == 0
            and result["missing_from_record"] == 0
            and result["head"]["gcs_back_s"] is not None
            and result["controller_restarted"]
        )
    except Exception as e:  # the drill reports what broke, and still tears down
        result["error"] = "".join(traceback.format_exception(e))[-3000:]
    finally:
        bed.down()
    return result


def main() -> int:
    return drill_main(run, "fh-")


if __name__ == "__main__":
    raise SystemExit(main())
