"""Webhooks: signed deliveries of the desk's events to the URLs a team configures.

The desk creates a delivery per configured endpoint for each event it applies
(`decision.flagged`, `review.resolved`, `model.changed`, `drift.alert`), with an id that
the event determines, so replaying the desk's journal creates the same ones; what became
of each (delivered, or given up after `max_attempts`) is journaled too, so a restarted
desk sends only what was still pending (at least once: a receiver dedups by the
`X-Fraud-Delivery` id). A thread of the desk's process sends them, never a scoring
replica, so no answer waits for a receiver.

Each POST carries the event as JSON and `X-Fraud-Signature: t=<unix seconds>,v1=<hex>`,
the HMAC-SHA256 of `"<t>.<body>"` under the endpoint's secret (read from the environment
variable the endpoint names: the secret is never in the config, the journal or a log).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

log = logging.getLogger(__name__)
Event = Literal["decision.flagged", "review.resolved", "model.changed", "drift.alert"]
EVENTS: tuple[Event, ...] = ("decision.flagged", "review.resolved", "model.changed", "drift.alert")
DONE_KEPT = 100_000  # finished delivery ids remembered (a replayed event is not sent again)
LOG_KEPT = 1_000  # finished deliveries shown by `recent`


class WebhookEndpoint(BaseModel):
    """One receiver: where, which events, and the environment variable with its secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    url: HttpUrl
    events: list[Event] = Field(min_length=1)
    secret_env: str = Field(
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="The environment variable (of the desk actor's process) holding the "
        "HMAC secret.",
    )


class WebhookSettings(BaseModel):
    """Endpoints and how deliveries are retried."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoints: list[WebhookEndpoint] = []
    timeout_s: float = Field(5.0, gt=0, le=60)
    max_attempts: int = Field(8, ge=1, le=50)
    backoff_s: float = Field(1.0, gt=0, le=600, description="The first retry's wait; doubles.")
    max_backoff_s: float = Field(300.0, gt=0, le=3600)


@dataclass
class Delivery:
    """One event for one endpoint, and what became of it."""

    id: str
    endpoint: str
    event: str
    body: bytes
    created_ms: int
    attempts: int = 0
    status: str = "pending"  # pending, delivered, failed
    last: str | None = None  # the last attempt's HTTP status, or its error's class name
    next_at: float = 0.0  # monotonic time of the next attempt
    done_ms: int | None = None

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        del out["body"], out["next_at"]
        return out


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """`X-Fraud-Signature`'s value: `t=<timestamp>,v1=<hex HMAC-SHA256 of "t.body">`."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, header: str, body: bytes, tolerance_s: float = 300.0) -> bool:
    """What a receiver checks: the signature, and a timestamp within `tolerance_s`."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), header)


class Webhooks:
    """The desk's deliveries: made from its events (`emit`, during `_apply`, so replays
    make the same), sent by a thread (`start`), finished through `finish` (a callback the
    desk journals)."""

    def __init__(
        self,
        settings: WebhookSettings,
        finish: Callable[[str, str, int, str | None], None] | None = None,
    ) -> None:
        self.settings = settings
        self.finish_cb = finish
        self.pending: OrderedDict[str, Delivery] = OrderedDict()
        self.done: OrderedDict[str, str] = OrderedDict()  # id -> delivered / failed
        self.recent: deque[dict[str, Any]] = deque(maxlen=LOG_KEPT)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wanted(self, event: Event) -> bool:
        return any(event in e.events for e in self.settings.endpoints)

    def emit(self, event: Event, key: str, payload: dict[str, Any], at_ms: int) -> None:
        """A delivery of this event to every endpoint that wants it (none twice: `key`
        names the event, so a replayed one finds its delivery made or done)."""
        for endpoint in self.settings.endpoints:
            if event not in endpoint.events:
                continue
            delivery_id = f"{event}:{key}:{endpoint.name}"
            with self._lock:
                if delivery_id in self.done or delivery_id in self.pending:
                    continue
                body = orjson.dumps(
                    {"id": delivery_id, "event": event, "at_ms": at_ms, "data": payload},
                    option=orjson.OPT_SERIALIZE_NUMPY,
                )
                self.pending[delivery_id] = Delivery(delivery_id, endpoint.name, event, body, at_ms)
        self._wake.set()

    def finished(self, delivery_id: str, status: str, attempts: int, last: str | None) -> None:
        """Record a delivery's end (the desk applies its journaled record through this)."""
        with self._lock:
            d = self.pending.pop(delivery_id, None)
            self.done[delivery_id] = status
            while len(self.done) > DONE_KEPT:
                self.done.popitem(last=False)
        if d is not None:
            d.status, d.attempts, d.last, d.done_ms = status, attempts, last, int(time.time() * 1e3)
            self.recent.appendleft(d.summary())

    # -- the sender ---------------------------------------------------------------------------
    def start(self) -> None:
        """Send in a thread of this process (once; only where endpoints are configured)."""
        if self._thread is None and self.settings.endpoints:
            self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
            self._thread.start()

    def _secret(self, endpoint: WebhookEndpoint) -> bytes | None:
        value = os.environ.get(endpoint.secret_env)
        return value.encode() if value else None

    def _run(self) -> None:
        endpoints = {e.name: e for e in self.settings.endpoints}
        with httpx.Client(timeout=self.settings.timeout_s) as client:
            while not self._stop.is_set():
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                now = time.monotonic()
                with self._lock:
                    due = [d for d in self.pending.values() if d.next_at <= now]
                for d in due:
                    if self._stop.is_set():
                        return
                    self._attempt(client, endpoints[d.endpoint], d)

    def stop(self) -> None:
        """Send no more (a desk replaced by a newer incarnation, or a test's end)."""
        self._stop.set()
        self._wake.set()

    def _attempt(self, client: httpx.Client, endpoint: WebhookEndpoint, d: Delivery) -> None:
        secret = self._secret(endpoint)
        d.attempts += 1
        if secret is None:
            d.last = "no secret"  # names the setting, never a value
        else:
            stamp = int(time.time())
            headers = {
                "content-type": "application/json",
                "x-fraud-event": d.event,
                "x-fraud-delivery": d.id,
                "x-fraud-signature": signature(secret, stamp, d.body),
            }
            try:
                r = client.post(str(endpoint.url), content=d.body, headers=headers)
                d.last = str(r.status_code)
                if 200 <= r.status_code < 300:
                    self._end(d, "delivered")
                    return
            except httpx.HTTPError as e:
                d.last = type(e).__name__
        s = self.settings
        if d.attempts >= s.max_attempts:
            log.warning("webhook %s to %s given up after %d attempts", d.event, d.endpoint,
                        d.attempts)  # fmt: skip
            self._end(d, "failed")
            return
        d.next_at = time.monotonic() + min(s.max_backoff_s, s.backoff_s * 2 ** (d.attempts - 1))

    def _end(self, d: Delivery, status: str) -> None:
        if self.finish_cb is None:
            self.finished(d.id, status, d.attempts, d.last)
            return
        try:
            self.finish_cb(d.id, status, d.attempts, d.last)  # journaled, then `finished`
        except Exception as e:  # replaced or the store away: the new desk or a retry sends it
            log.warning("webhook delivery end not journaled: %s", type(e).__name__)
            d.next_at = time.monotonic() + self.settings.backoff_s
            if type(e).__name__ == "ShardMoved":  # a newer incarnation sends from now on
                self.stop()

    # -- state --------------------------------------------------------------------------------
    def capture(self) -> dict[str, Any]:
        with self._lock:
            return {
                "pending": [asdict(d) | {"next_at": 0.0} for d in self.pending.values()],
                "done": list(self.done.items()),
            }

    def load(self, form: dict[str, Any] | None) -> None:
        if not form:
            return
        with self._lock:
            self.pending = OrderedDict(
                (d["id"], Delivery(**{**d, "body": bytes(d["body"])})) for d in form["pending"]
            )
            self.done = OrderedDict((k, v) for k, v in form["done"])
        self._wake.set()

    def report(self) -> dict[str, Any]:
        """Endpoints (names and URLs, never secrets), pending and recent deliveries."""
        with self._lock:
            pending = [d.summary() for d in self.pending.values()]
        return {
            "endpoints": [
                {"name": e.name, "url": str(e.url), "events": e.events}
                for e in self.settings.endpoints
            ],
            "pending": pending,
            "recent": list(self.recent),
        }
