"""Changing the shard counts of a running app with `serve.run` (what `serve deploy` of an
edited config does) moves key groups under traffic: every transaction is answered (503s
retried), none is lost or counted twice, and every online score equals offline scoring."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from features.spec import FEATURE_NAMES
from features.transactions import normalise
from models.onnx import load_model
from policy.decision import Thresholds
from simulator.config import SimulationConfig
from simulator.generate import generate_days
from simulator.replay import tx_bodies
from training.scoring import score_transactions

REPO = Path(__file__).resolve().parents[2]
BATCH = 4


def rescale_stream() -> pd.DataFrame:
    cfg = SimulationConfig(n_customers=100, n_terminals=150, n_days=10, seed=33)
    df = pd.concat(list(generate_days(cfg)), ignore_index=True)
    df = df[df["amount"] > 0]
    for col, prefix in (("user_id", "rs-card-"), ("terminal_id", "rs-term-"),
                        ("transaction_id", "rs-tx-")):  # fmt: skip
        df[col] = prefix + df[col].astype(str)
    return normalise(df)


class Sender(threading.Thread):
    """Sends the stream in order, one batch at a time, each until answered 200 (a 503 or a
    dropped connection is retried with the same body): per-card order holds. Before a
    batch, the fraud labels known by its first transaction's time (7 days after each fraud)
    go to `/v1/feedback`; `applied_at` keeps when, for the offline side. Pauses at `gate_at`
    until `gate` is set; paced after `slow_after` so moves happen under traffic."""

    def __init__(self, url: str, bodies: list[dict[str, Any]], tx: pd.DataFrame) -> None:
        super().__init__(daemon=True)
        self.url, self.bodies = url, bodies
        frauds = tx[tx["is_fraud"] == 1]
        due = frauds["timestamp"] + pd.Timedelta(days=7)
        self.labels = sorted(zip(due, frauds["transaction_id"], frauds["terminal_id"], strict=True))
        self.times = tx["timestamp"].tolist()
        self.applied_at: list[tuple[str, pd.Timestamp]] = []
        self.not_found: list[str] = []
        self.requests: list[tuple[float, float]] = []  # (sent, answered), monotonic
        self.sent = 0
        self.answers: dict[str, dict[str, Any]] = {}
        self.statuses: dict[int, int] = {}
        self.gate = threading.Event()
        self.gate_at = 2 * len(bodies) // 3
        self.slow_after = len(bodies) // 3
        self.failed: str | None = None

    def _post(self, c: httpx.Client, path: str, body: dict[str, Any], **params: Any) -> Any:
        """POST until 200; None (and `failed` set) on a final error or past the deadline."""
        while time.monotonic() < self.deadline:
            started = time.monotonic()
            try:
                r = c.post(path, params=params, json=body)
                status = r.status_code
            except httpx.HTTPError:
                status = 599
            self.requests.append((started, time.monotonic()))
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 200:
                return r.json()
            if status not in (503, 599):
                self.failed = f"{path}: {status} {r.text[:200]}"
                return None
            time.sleep(0.2)
        self.failed = f"{path}: not answered in time"
        return None

    def run(self) -> None:
        self.deadline = time.monotonic() + 400  # bounded in time as in count
        with httpx.Client(base_url=self.url, timeout=30) as c:
            for at in range(0, len(self.bodies), BATCH):
                if at >= self.gate_at:
                    self.gate.wait(timeout=300)
                now = self.times[at]
                known = [lb for lb in self.labels if lb[0] <= now]
                if known:
                    self.labels = self.labels[len(known) :]
                    body = {"labels": [{"transaction_id": t, "terminal_id": term, "is_fraud": True}
                                       for _, t, term in known]}  # fmt: skip
                    out = self._post(c, "/v1/feedback", body)
                    if out is None:
                        return
                    self.not_found += out["not_found"]
                    at_ms = now - pd.Timedelta(milliseconds=1)  # just before this batch
                    self.applied_at += [(t, at_ms) for _, t, _ in known]
                batch = self.bodies[at : at + BATCH]
                out = self._post(
                    c, "/v1/transactions/batch", {"transactions": batch}, include_features=True
                )
                if out is None:
                    return
                for b, res in zip(batch, out["results"], strict=True):
                    self.answers[b["transaction_id"]] = res
                self.sent = at + len(batch)
                if self.sent > self.slow_after:
                    time.sleep(0.15)  # a third takes longer than a redeploy


def _deploy(args: dict[str, Any]) -> None:
    from ray import serve

    from deployments.app import application
    from tests.service.conftest import PINNED

    serve.run(application(args, PINNED), name="fraud-rescale", route_prefix="/rescale")


def _wait(check: Any, what: str, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"{what} not within {seconds} s"
        time.sleep(0.2)


@pytest.mark.timeout(900)
def test_rescale_4_7_3_under_traffic_scores_as_offline(
    service: str, app_args: dict[str, Any], tmp_path: Path
) -> None:
    from ray import serve

    from tests.shard_actors import kill_shard_actors

    tx = rescale_stream()
    assert 1_000 < len(tx) < 3_000
    bodies = tx_bodies(tx)  # with the gateway's fields: links move with their key groups
    args = {
        "n_user_shards": 4,
        "n_terminal_shards": 2,
        "id_key": app_args["id_key"],
        "state": {"backend": "sqlite", "path": str(tmp_path / "state"), "snapshot_every": 100},
        "deadline_ms": 60_000,  # every answer is compared with offline: wait for the moves
    }
    url = f"{service}/rescale"
    layouts = [(4, 2), (7, 2), (3, 3)]
    try:
        _deploy(args)
        _wait(lambda: httpx.get(f"{url}/healthz").status_code == 200, "healthy")
        sender = Sender(url, bodies, tx)
        sender.start()
        moves = []
        for step, (n_user, n_terminal) in enumerate(layouts[1:]):
            if step == 0:
                _wait(lambda: sender.sent >= sender.slow_after or not sender.is_alive(), "traffic")
            else:
                _wait(lambda: sender.sent >= sender.gate_at or not sender.is_alive(), "traffic")
                sender.gate.set()  # the last third goes while the second move runs
            started = time.monotonic()
            _deploy({**args, "n_user_shards": n_user, "n_terminal_shards": n_terminal})
            moves.append((started, time.monotonic()))
        sender.gate.set()
        sender.join(timeout=500)
        assert sender.failed is None, sender.failed
        assert len(sender.answers) == len(tx), "a transaction was never answered"
        assert len(sender.applied_at) > 10 and sender.not_found == []  # labels found their tx
        # The moves ran under traffic: requests were sent while each redeploy ran (Serve
        # holds them while no replica is ready; a sealed shard would answer 503).
        for a, b in moves:
            assert any(a < sent < b for sent, _ in sender.requests), "no traffic during a move"
        waits = [round(done - sent, 2) for sent, done in sender.requests]
        stats = httpx.get(f"{url}/v1/stats").json()
        shards = stats["shards"]
        users = [s for s in shards if s["kind"] == "user"]
        terminals = [s for s in shards if s["kind"] == "terminal"]
        assert (len(users), len(terminals)) == layouts[-1]
        assert sum(s["transactions"] for s in users) == len(tx)  # nothing lost or doubled
        assert sum(s["transactions"] for s in terminals) == len(tx)
        links = tx[["device_id", "ip", "email", "merchant_country"]].notna().to_numpy().sum()
        assert sum(s["link_events"] for s in terminals) == links  # each once, moved whole
        took = [round(b - a, 1) for a, b in moves]
        print(f"\nrescale 4->7->3 under traffic: serve.run took {took} s; longest request "
              f"{max(waits)} s; statuses {sender.statuses}")  # fmt: skip
    finally:
        serve.delete("fraud-rescale")
        for n_user, n_terminal in layouts:
            kill_shard_actors(
                n_user,
                n_terminal,
                {**args, "n_user_shards": n_user, "n_terminal_shards": n_terminal},
            )

    model = load_model(REPO / "models" / "default")
    feedback = pd.DataFrame(
        {"transaction_id": [t for t, _ in sender.applied_at], "is_fraud": np.int8(1),
         "timestamp": [at for _, at in sender.applied_at]}
    )  # fmt: skip
    offline = score_transactions(tx, model, Thresholds(), feedback=feedback)
    offline = offline.set_index("transaction_id")
    online = pd.DataFrame.from_dict(sender.answers, orient="index").loc[offline.index]
    online_x = np.array([[f[n] for n in FEATURE_NAMES] for f in online["features"]], float)
    np.testing.assert_allclose(online_x, offline[list(FEATURE_NAMES)].to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(online["score"].to_numpy(), offline["score"].to_numpy(), atol=1e-6)
    assert (offline["TERMINAL_ID_RISK_30DAY_WINDOW"] > 0).sum() > 10  # the labels counted
    assert (offline["USER_DEVICE_NB_TX_30DAY_WINDOW"] > 0).sum() > 50  # links kept history
