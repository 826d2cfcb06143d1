"""Who may call what: scoped API keys, short-lived session tokens, per-key rate limits.

Pure code (no Ray, no ASGI): `deployments.http.auth.AccessGuard` asks `Access.check` about
each request. Keys live in a JSON key file (`fraud keys add/revoke/list`) that stores only
each key's SHA-256: the keys are random 256-bit strings, so a fast hash is enough, and a
leaked file opens nothing. The file is re-read when it changes, so a revoked key stops
working within a second, without a restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Literal

import orjson
from limits import RateLimitItem, parse, storage, strategies
from pydantic import BaseModel, ConfigDict, Field, field_validator

API_KEY_ENV = "FRAUD_API_KEY"  # one key with every scope, for a quick start
KEY_PREFIX = "fk_"
TOKEN_PREFIX = "fs."
RELOAD_EVERY_S = 1.0


def env_key_headers() -> dict[str, str]:
    """What the project's own clients (`fraud demo`, `export-labels`) send: FRAUD_API_KEY
    from their environment as a bearer token, if set."""
    key = os.environ.get(API_KEY_ENV)
    return {"authorization": f"Bearer {key}"} if key else {}


class Scope(str, Enum):
    score = "score"  # transactions, batches, feedback
    analyst = "analyst"  # reviews, cases, labels, stored decisions, live view, previews
    admin = "admin"  # policy, lists, models, stats, audit


ALL_SCOPES = frozenset(Scope)


class AccessConfig(BaseModel):
    """`access:` in serve_config.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keys_file: str | None = Field(
        None,
        description="JSON key file (`fraud keys add`), relative to the repository root. "
        "Unset and no FRAUD_API_KEY: no key is asked for (a loopback-only local start).",
    )
    session_minutes: float = Field(10.0, gt=0, le=24 * 60, description="Dashboard tokens.")
    default_rate: str | None = Field(
        None, description="Rate limit of keys without their own, e.g. '2000/second'."
    )
    rate_storage: str = Field(
        "memory://",
        description="Where request counts live: memory:// (per ingress replica) or "
        "redis://host:port (one limit across replicas).",
    )

    @field_validator("default_rate")
    @classmethod
    def _rate(cls, v: str | None) -> str | None:
        return _checked_rate(v)


def _checked_rate(v: str | None) -> str | None:
    if v is not None:
        try:
            parse(v)
        except ValueError:
            raise ValueError(f"rate {v!r}: write it as '<count>/<second|minute|hour>'") from None
    return v


class ApiKey(BaseModel):
    """One key as the key file keeps it: never the key itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    scopes: frozenset[Scope]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_ms: int = 0
    revoked: bool = False
    rate: str | None = None

    @field_validator("rate")
    @classmethod
    def _rate(cls, v: str | None) -> str | None:
        return _checked_rate(v)


class KeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    keys: list[ApiKey] = []


def key_hash(presented: str) -> str:
    return hashlib.sha256(presented.encode()).hexdigest()


def read_key_file(path: Path) -> KeyFile:
    """The key file, validated (a file in an unknown format is refused, never guessed at)."""
    if not path.exists():
        return KeyFile()
    return KeyFile.model_validate(orjson.loads(path.read_bytes()))


def write_key_file(path: Path, keys: KeyFile) -> None:
    """Replace the file in one rename, owner-readable only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(orjson.dumps(keys.model_dump(mode="json"), option=orjson.OPT_INDENT_2))
    os.replace(aside, path)


def add_key(path: Path, key_id: str, scopes: set[Scope], rate: str | None = None) -> str:
    """Add a key to the file; returns the key, which is shown once and stored nowhere."""
    keys = read_key_file(path)
    if any(k.id == key_id for k in keys.keys):
        raise ValueError(f"id: a key named {key_id!r} exists (revoke it, or pick another id)")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    entry = ApiKey(
        id=key_id,
        scopes=frozenset(scopes),
        sha256=key_hash(secret),
        created_ms=int(time.time() * 1000),
        rate=rate,
    )
    keys.keys.append(entry)
    write_key_file(path, keys)
    return secret


def revoke_key(path: Path, key_id: str) -> None:
    keys = read_key_file(path)
    if not any(k.id == key_id for k in keys.keys):
        raise KeyError(f"id: no key named {key_id!r}")
    keys.keys = [k.model_copy(update={"revoked": k.revoked or k.id == key_id}) for k in keys.keys]
    write_key_file(path, keys)


class KeyRing:
    """The keys in force: the key file (re-read when it changes) plus FRAUD_API_KEY."""

    def __init__(self, path: Path | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.path, self.clock = path, clock
        self._by_hash: dict[str, ApiKey] = {}
        self._by_id: dict[str, ApiKey] = {}
        self._seen: tuple[float, str | None] | None = None  # (file mtime, FRAUD_API_KEY)
        self._checked = -math.inf
        self._lock = threading.Lock()
        self._refresh()

    def _refresh(self) -> None:
        now = self.clock()
        if now - self._checked < RELOAD_EVERY_S:
            return
        with self._lock:
            self._checked = now
            mtime = self.path.stat().st_mtime if self.path and self.path.exists() else -1.0
            seen = (mtime, os.environ.get(API_KEY_ENV))
            if seen == self._seen:
                return
            keys = read_key_file(self.path).keys if self.path else []
            if seen[1]:
                keys = [*keys, ApiKey(id="env", scopes=ALL_SCOPES, sha256=key_hash(seen[1]))]
            live = [k for k in keys if not k.revoked]
            self._by_hash = {k.sha256: k for k in live}
            self._by_id = {k.id: k for k in live}
            self._seen = seen

    @property
    def enabled(self) -> bool:
        """Whether any key is configured (none: the service asks for none)."""
        self._refresh()
        return self.path is not None or bool(self._by_hash)

    def find(self, presented: str) -> ApiKey | None:
        self._refresh()
        return self._by_hash.get(key_hash(presented))

    def by_id(self, key_id: str) -> ApiKey | None:
        self._refresh()
        return self._by_id.get(key_id)


@dataclass(frozen=True)
class Session:
    key_id: str
    scopes: frozenset[Scope]
    expires: float  # seconds since the epoch


class Sessions:
    """Short-lived signed tokens for the console, so no long-lived key goes into a URL
    (an EventSource cannot send headers). HMAC-SHA256 under a key every replica derives from
    the service's id key; a token dies with its expiry or its API key's revocation."""

    def __init__(self, secret: bytes, minutes: float) -> None:
        self.secret, self.seconds = secret, minutes * 60

    def mint(self, key: ApiKey, now: float | None = None) -> tuple[str, float]:
        expires = (time.time() if now is None else now) + self.seconds
        scopes = sorted(s.value for s in key.scopes & {Scope.analyst})
        body = _b64(orjson.dumps({"k": key.id, "s": scopes, "e": round(expires, 3)}))
        return f"{TOKEN_PREFIX}{body}.{self._sign(body)}", expires

    def verify(self, token: str, now: float | None = None) -> Session | None:
        if not token.isascii():  # no token we mint has other characters; compare_digest
            return None  # refuses non-ASCII text, and a forged token must get 401, not 500
        body, _, mac = token.removeprefix(TOKEN_PREFIX).partition(".")
        if not hmac.compare_digest(mac, self._sign(body)):
            return None
        try:
            claims = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            session = Session(claims["k"], frozenset(Scope(s) for s in claims["s"]), claims["e"])
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > (time.time() if now is None else now) else None

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self.secret, body.encode(), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class RateLimits:
    """Per-key request limits on a moving window (`limits`); counts live in `rate_storage`."""

    def __init__(self, storage_uri: str, default_rate: str | None) -> None:
        self._limiter = strategies.MovingWindowRateLimiter(storage.storage_from_string(storage_uri))
        self._default = parse(default_rate) if default_rate else None
        self._items: dict[str, RateLimitItem] = {}

    def retry_after(self, key: ApiKey) -> int | None:
        """None if this request may go; else seconds until one would."""
        item = self._item(key)
        if item is None or self._limiter.hit(item, key.id):
            return None
        reset = self._limiter.get_window_stats(item, key.id).reset_time
        return max(1, math.ceil(reset - time.time()))

    def _item(self, key: ApiKey) -> RateLimitItem | None:
        if key.rate is None:
            return self._default
        item = self._items.get(key.rate)
        if item is None:
            item = self._items[key.rate] = parse(key.rate)
        return item


# -- which scope a route needs ------------------------------------------------------------
# Keyed by the route the router picks (its template, as FastAPI declares it), never by the
# path as sent: the guard authorises exactly what will be served (`deployments.http.routes`).
_PUBLIC_ROUTES = frozenset(
    {"/healthz", "/dashboard", "/dashboard/{asked}", "/docs", "/openapi.json",
     "/docs/oauth2-redirect"}
)  # fmt: skip
_ROUTE_SCOPES: dict[tuple[str, str], Scope] = {
    ("POST", "/v1/transactions"): Scope.score,
    ("POST", "/v1/transactions/batch"): Scope.score,
    ("POST", "/v1/feedback"): Scope.score,
    ("GET", "/v1/transactions/{transaction_id}"): Scope.analyst,
    ("POST", "/v1/reviews/{transaction_id}"): Scope.analyst,
    ("GET", "/v1/reviews"): Scope.analyst,
    ("GET", "/v1/labels"): Scope.analyst,
    ("GET", "/v1/live"): Scope.analyst,
    ("GET", "/v1/drift"): Scope.analyst,
    ("GET", "/v1/live/stream"): Scope.analyst,
    ("GET", "/v1/live/ws"): Scope.analyst,  # checked by the channel itself (live_socket.py)
    ("GET", "/v1/model"): Scope.analyst,
    ("GET", "/v1/cases/{transaction_id}"): Scope.analyst,
    ("POST", "/v1/policy/preview"): Scope.analyst,  # reads only: a change is saved as admin
    ("POST", "/v1/session"): Scope.analyst,
}
LIVE_STREAM, SESSION = "/v1/live/stream", "/v1/session"


def required_scope(method: str, route: str | None) -> Scope | None:
    """The scope a request for `route` (the template the router matched; None: no route)
    needs; None for the public routes (probes, docs, the console's files). Anything
    not named here needs `admin`: a new route is closed until it is listed."""
    method = method.upper()
    if method == "HEAD":  # Starlette answers HEAD on every GET route
        method = "GET"
    if route in _PUBLIC_ROUTES and method == "GET":
        return None
    if route is None:
        return Scope.admin
    return _ROUTE_SCOPES.get((method, route), Scope.admin)


# -- the decision ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    status: int  # 200: go on; else the error status
    key_id: str | None = None
    detail: str = ""
    retry_after: int | None = None
    expires: float | None = None  # a session token's expiry (seconds since the epoch)


class Access:
    """What the guard asks: may this request go, and as which key."""

    def __init__(self, keys: KeyRing, sessions: Sessions, limits: RateLimits) -> None:
        self.keys, self.sessions, self.limits = keys, sessions, limits

    def check(
        self, method: str, route: str | None, bearer: str | None, query_token: str | None
    ) -> Verdict:
        """`route` is the template the router will serve the request by (None: no route)."""
        if not self.keys.enabled:
            return Verdict(200)
        needed = required_scope(method, route)
        if needed is None:
            return Verdict(200)
        presented = bearer
        if presented is None and query_token and route == LIVE_STREAM:
            presented = query_token  # EventSource cannot send headers: a token, not a key
            if not presented.startswith(TOKEN_PREFIX):
                return Verdict(401, detail="the live stream takes a session token, not a key")
        if not presented:
            return Verdict(401, detail="missing API key")
        if presented.startswith(TOKEN_PREFIX) and route == SESSION:
            return Verdict(403, detail="a session is opened with an API key, not a token")
        key, expires = self._identify(presented)
        if key is None:
            return Verdict(401, detail="unknown, expired or revoked API key")
        if needed not in key.scopes:
            return Verdict(403, key.id, f"this key lacks the {needed.value} scope")
        wait = self.limits.retry_after(key)
        if wait is not None:
            return Verdict(429, key.id, "rate limit of this key reached", wait)
        return Verdict(200, key.id, expires=expires)

    def _identify(self, presented: str) -> tuple[ApiKey | None, float | None]:
        if not presented.startswith(TOKEN_PREFIX):
            return self.keys.find(presented), None
        session = self.sessions.verify(presented)
        key = self.keys.by_id(session.key_id) if session else None
        if session is None or key is None:  # expired, forged, or its key revoked
            return None, None
        return key.model_copy(update={"scopes": session.scopes}), session.expires

    def still_allowed(self, key_id: str | None, expires: float | None) -> bool:
        """Whether a request let in earlier as `key_id` (with a token until `expires`) would
        still be: a long-lived answer (the live stream) asks this as it goes, so a revoked
        key or an expired token ends it."""
        if not self.keys.enabled:
            return True
        if key_id is None or self.keys.by_id(key_id) is None:
            return False
        return expires is None or expires > time.time()

    def session(self, key_id: str | None) -> dict[str, object]:
        """A console token for the key this request came with (POST /v1/session)."""
        key = self.keys.by_id(key_id) if key_id else None
        if key is None:
            return {
                "token": None,
                "expires": None,
                "auth": "off" if not self.keys.enabled else "on",
            }
        token, expires = self.sessions.mint(key)
        return {"token": token, "expires": expires, "auth": "on"}
