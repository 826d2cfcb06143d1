"""Webhooks: signed, retried with backoff, recorded, sent once per event across a desk
restart, never holding an answer up, and no secret in what the service shows."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from actors.actor.desk import Desk
from actors.actor.journal import ShardSettings
from actors.actor.webhooks import signature, verify
from actors.client.local import LocalShardClient
from actors.store.backends import MemoryStore
from deployments.scoring.pipeline import ScoringPipeline
from policy.decision import Thresholds
from tests.code.test_pipeline import FakeModel, tx

SECRET = "whsec-test-0123456789"


class Receiver:
    """A loopback HTTP receiver: records each POST; the first `fail` answer 500."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.got: list[dict[str, Any]] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                owner.got.append({"headers": dict(self.headers), "body": body})
                status = 500 if owner.fail > 0 else 204
                owner.fail -= 1
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setenv("FRAUD_TEST_HOOK_SECRET", SECRET)
    r = Receiver(fail=2)
    yield r
    r.close()


def _settings(url: str, **retry: Any) -> ShardSettings:
    return ShardSettings(webhooks={
        "endpoints": [{"name": "desk-bot", "url": url, "secret_env": "FRAUD_TEST_HOOK_SECRET",
                       "events": ["decision.flagged", "review.resolved", "drift.alert"]}],
        "backoff_s": 0.05, "max_backoff_s": 0.2, **retry,
    })  # fmt: skip


def _wait(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert condition()


def test_signatures_verify_and_refuse_a_changed_body_or_an_old_stamp() -> None:
    body, now = b'{"a":1}', int(time.time())
    header = signature(SECRET.encode(), now, body)
    assert verify(SECRET.encode(), header, body)
    assert not verify(SECRET.encode(), header, b'{"a":2}')
    assert not verify(b"another", header, body)
    assert not verify(SECRET.encode(), signature(SECRET.encode(), now - 3600, body), body)
    assert not verify(SECRET.encode(), "garbage", body)


def test_flagged_decisions_and_resolutions_are_delivered_signed_retried_and_recorded(
    receiver: Receiver,
) -> None:
    shards = LocalShardClient(1, 1, _settings(receiver.url))
    p = ScoringPipeline(shards, FakeModel(), Thresholds(), sink=shards.sink)
    out = asyncio.run(p.score([tx(1, amount=10.0), tx(2, amount=600.0), tx(3, amount=950.0)]))
    assert [o.decision for o in out] == ["LEGIT", "REVIEW", "BLOCK"]
    desk = shards.desk_state
    desk.resolve("tx2", "fraud", "ana", "confirmed by phone")
    _wait(lambda: len([g for g in receiver.got if g["headers"]["x-fraud-event"]]) >= 5)
    _wait(lambda: not desk.webhooks()["pending"])
    delivered = {g["headers"]["x-fraud-delivery"]: g for g in receiver.got}
    assert set(delivered) == {
        "decision.flagged:tx2:desk-bot", "decision.flagged:tx3:desk-bot",
        *(k for k in delivered if k.startswith("review.resolved:tx2:")),
    }  # fmt: skip
    for got in receiver.got:  # every attempt signed with the endpoint's secret
        assert verify(SECRET.encode(), got["headers"]["x-fraud-signature"], got["body"])
    event = orjson.loads(delivered["decision.flagged:tx3:desk-bot"]["body"])
    assert event["event"] == "decision.flagged" and event["data"]["decision"] == "BLOCK"
    recent = {d["id"]: d for d in desk.webhooks()["recent"]}
    assert sum(d["attempts"] for d in recent.values()) == len(receiver.got)  # 2 retried
    assert all(d["status"] == "delivered" for d in recent.values())
    shown = orjson.dumps(desk.webhooks()).decode()
    assert SECRET not in shown and "desk-bot" in shown  # endpoints shown, secrets never
    desk.hooks.stop()


def test_a_restarted_desk_sends_what_was_pending_and_nothing_delivered_again(
    receiver: Receiver,
) -> None:
    store = MemoryStore()
    settings = _settings(receiver.url)
    receiver.fail = 0
    first = Desk(0, 1, settings, store)
    first._submit(("drift", 5, {"state": "alert", "over": ["amount"], "psi": None}))
    _wait(lambda: not first.webhooks()["pending"])
    assert len(receiver.got) == 1
    receiver.fail = 10**6  # the receiver goes down
    first._submit(("drift", 9, {"state": "alert", "over": ["score"], "psi": None}))
    _wait(lambda: len(receiver.got) > 1)  # tried, refused: still pending
    first.checkpoint()  # the pending delivery in a checkpoint, the done one too
    first._submit(("drift", 11, {"state": "alert", "over": ["score"], "psi": None}))
    _wait(lambda: len(receiver.got) > 3)
    first.hooks.stop()  # the desk's process dies
    again = Desk(0, 1, settings, store)  # replays the journal: one delivery is still pending
    pending = [d["id"] for d in again.webhooks()["pending"]]
    assert pending == ["drift.alert:9:desk-bot", "drift.alert:11:desk-bot"]
    receiver.fail = 0
    _wait(lambda: not again.webhooks()["pending"])
    ids = [g["headers"]["x-fraud-delivery"] for g in receiver.got]
    assert ids.count("drift.alert:5:desk-bot") == 1  # delivered once, never again
    assert ids[-2:] == ["drift.alert:9:desk-bot", "drift.alert:11:desk-bot"]
    again.hooks.stop()


def test_an_endpoint_that_never_answers_is_given_up_and_recorded(receiver: Receiver) -> None:
    receiver.fail = 10**6
    desk = Desk(0, 1, _settings(receiver.url, max_attempts=3), MemoryStore())
    desk._submit(("drift", 7, {"state": "alert", "over": ["amount"], "psi": None}))
    _wait(lambda: bool(desk.webhooks()["recent"]))
    [record] = desk.webhooks()["recent"]
    assert (record["status"], record["attempts"], record["last"]) == ("failed", 3, "500")
    desk.hooks.stop()
