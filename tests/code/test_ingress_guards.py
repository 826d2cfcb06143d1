"""Guards in front of every route, tested on a FastAPI app without Ray Serve: scoped keys,
revocation, path tricks, session tokens, per-key rate limits, the body cap."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from deployments.http.access import (
    API_KEY_ENV,
    Access,
    KeyRing,
    RateLimits,
    Scope,
    Sessions,
    add_key,
    read_key_file,
    required_scope,
    revoke_key,
)
from deployments.http.auth import AccessGuard
from deployments.http.limits import BodySizeLimit


def access(keys_file: Path | None, rate: str | None = None) -> Access:
    return Access(KeyRing(keys_file), Sessions(b"s" * 32, 10), RateLimits("memory://", rate))


def guarded_app(guard: Access, max_bytes: int = 1_000) -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodySizeLimit, max_bytes=max_bytes)
    app.add_middleware(AccessGuard, find_access=lambda: guard, router=app.router)

    @app.post("/v1/transactions")
    async def score(payload: dict, request: Request) -> dict:
        return {"n": len(payload), "key": request.state.key_id}

    @app.get("/v1/reviews")
    async def reviews() -> dict:
        return {"items": []}

    @app.put("/v1/policy/rules")
    async def rules() -> dict:
        return {"ok": True}

    @app.get("/v1/live/stream")
    async def live() -> dict:
        return {"live": True}

    @app.post("/v1/session")
    async def session(request: Request) -> dict:
        return guard.session(request.state.key_id)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    return app


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(tmp_path: Path) -> tuple[TestClient, Path, dict[str, str]]:
    path = tmp_path / "keys.json"
    keys = {
        "score": add_key(path, "payments", {Scope.score}),
        "analyst": add_key(path, "desk", {Scope.analyst}),
        "admin": add_key(path, "ops", {Scope.admin}),
    }
    return TestClient(guarded_app(access(path))), path, keys


def test_each_scope_opens_its_routes_and_no_other(
    keyed: tuple[TestClient, Path, dict[str, str]],
) -> None:
    client, _, keys = keyed
    routes = [
        ("post", "/v1/transactions", "score"),
        ("get", "/v1/reviews", "analyst"),
        ("put", "/v1/policy/rules", "admin"),
    ]
    for method, path, scope in routes:
        r = client.request(method, path, json={"a": 1})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert client.request(method, path, json={}, headers=bearer("fk_nope")).status_code == 401
        for holder, key in keys.items():
            status = client.request(method, path, json={"a": 1}, headers=bearer(key)).status_code
            assert status == (200 if holder == scope else 403), (method, path, holder)
    r = client.post("/v1/transactions", json={"a": 1}, headers=bearer(keys["score"]))
    assert r.json() == {"n": 1, "key": "payments"}  # the app learns which key, never the key
    assert client.get("/healthz").status_code == 200  # probes need no key
    stored = (keyed[1]).read_text()
    assert all(k not in stored for k in keys.values())  # only hashes are kept


def test_a_revoked_key_stops_working_without_a_restart(
    keyed: tuple[TestClient, Path, dict[str, str]],
) -> None:
    client, path, keys = keyed
    assert client.get("/v1/reviews", headers=bearer(keys["analyst"])).status_code == 200
    revoke_key(path, "desk")
    assert read_key_file(path).keys[1].revoked
    time.sleep(1.1)  # the ring looks at the file at most once a second
    assert client.get("/v1/reviews", headers=bearer(keys["analyst"])).status_code == 401
    assert (
        client.post("/v1/transactions", json={}, headers=bearer(keys["score"])).status_code == 200
    )


def test_path_tricks_do_not_pass_the_guard(keyed: tuple[TestClient, Path, dict[str, str]]) -> None:
    client, _, keys = keyed
    for raw in (
        "//v1/policy/rules", "/V1/policy/rules", "/v1/reviews/..;/policy/rules",
        "/v1/policy/rules/", "/v1/policy/rules;x=1", "/v1/./policy/rules",
        "/v1/reviews/%2e%2e/policy/rules", "/v1/reviews/%252e%252e/policy/rules",
    ):  # fmt: skip
        for key in (None, keys["score"], keys["analyst"]):
            headers = bearer(key) if key else {}
            r = client.put(raw, json={}, headers=headers)
            assert r.status_code in (400, 401, 403), (raw, key, r.status_code)
    assert required_scope("GET", "/v1/unknown") == Scope.admin  # unlisted routes are closed
    assert required_scope("GET", None) == Scope.admin  # no route: closed too
    assert required_scope("GET", "/dashboard/{asked}") is None
    assert required_scope("HEAD", "/healthz") is None
    assert required_scope("PUT", "/healthz") == Scope.admin


def test_the_dashboard_gets_a_short_lived_token_never_a_key_in_the_url(
    keyed: tuple[TestClient, Path, dict[str, str]],
) -> None:
    client, path, keys = keyed
    session = client.post("/v1/session", headers=bearer(keys["analyst"])).json()
    token = session["token"]
    assert token.startswith("fs.") and session["expires"] - time.time() == pytest.approx(600, 5)
    assert client.get(f"/v1/live/stream?access_token={token}").status_code == 200
    assert client.get("/v1/reviews", headers=bearer(token)).status_code == 200
    # A token carries the analyst scope only, cannot open another session, and a key may
    # not travel in the URL.
    assert client.put("/v1/policy/rules", json={}, headers=bearer(token)).status_code == 403
    assert client.post("/v1/session", headers=bearer(token)).status_code == 403
    assert client.get(f"/v1/live/stream?access_token={keys['analyst']}").status_code == 401
    assert client.get(f"/v1/reviews?access_token={token}").status_code == 401
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get(f"/v1/live/stream?access_token={forged}").status_code == 401
    sessions = Sessions(b"s" * 32, 10)
    ring = KeyRing(path)
    key = ring.by_id("desk")
    assert key is not None
    old, _ = sessions.mint(key, now=time.time() - 601)
    assert sessions.verify(old) is None  # expired
    revoke_key(path, "desk")
    time.sleep(1.1)
    assert client.get(f"/v1/live/stream?access_token={token}").status_code == 401


def test_a_burst_from_one_key_is_throttled_and_the_other_key_is_not(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    slow = add_key(path, "slow", {Scope.score}, rate="5/minute")
    fast = add_key(path, "fast", {Scope.score})
    client = TestClient(guarded_app(access(path, rate="1000/second")))
    statuses = []
    for _ in range(8):
        statuses.append(client.post("/v1/transactions", json={}, headers=bearer(slow)).status_code)
        ok = client.post("/v1/transactions", json={}, headers=bearer(fast))
        assert ok.status_code == 200
    assert statuses == [200] * 5 + [429] * 3
    r = client.post("/v1/transactions", json={}, headers=bearer(slow))
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
    assert "rate limit" in r.json()["detail"]


def test_no_keys_configured_means_open_and_the_env_key_has_every_scope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    client = TestClient(guarded_app(access(None)))
    assert client.put("/v1/policy/rules", json={}).status_code == 200
    assert client.post("/v1/session").json()["auth"] == "off"
    monkeypatch.setenv(API_KEY_ENV, "s3cret-token")
    client = TestClient(guarded_app(access(None)))
    r = client.put("/v1/policy/rules", json={})
    assert r.status_code == 401 and "s3cret" not in r.text
    for method, path in [("put", "/v1/policy/rules"), ("get", "/v1/reviews")]:
        assert (
            client.request(method, path, json={}, headers=bearer("s3cret-token")).status_code == 200
        )


def test_a_guard_without_access_refuses_rather_than_opens() -> None:
    app = FastAPI()
    app.add_middleware(AccessGuard, find_access=lambda: None, router=app.router)

    @app.get("/v1/reviews")
    async def reviews() -> dict:
        return {}

    r = TestClient(app).get("/v1/reviews")
    assert r.status_code == 503 and r.headers["retry-after"] == "1"


def test_body_limit_by_header_and_by_stream() -> None:
    client = TestClient(guarded_app(access(None), max_bytes=1_000))
    assert client.post("/v1/transactions", json={"a": "x" * 500}).status_code == 200
    assert client.post("/v1/transactions", json={"a": "x" * 5_000}).status_code == 413

    def chunks():  # no Content-Length: counted as it streams
        yield b'{"a": "'
        for _ in range(100):
            yield b"x" * 100
        yield b'"}'

    r = client.post(
        "/v1/transactions", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_a_token_with_non_ascii_characters_is_refused_not_a_crash(
    keyed: tuple[TestClient, Path, dict[str, str]],
) -> None:
    client, _, _ = keyed
    assert Sessions(b"s" * 32, 10).verify("fs.x.é") is None
    r = client.get("/v1/reviews", headers={"authorization": "Bearer fs.x.é".encode()})
    assert r.status_code == 401
    r = client.get("/v1/live/stream?access_token=fs.x.%C3%A9")
    assert r.status_code == 401
    r = client.get("/v1/live/stream?access_token=fs.%C3%A9.abc")
    assert r.status_code == 401


def test_access_granted_earlier_ends_with_its_key_or_its_token(
    keyed: tuple[TestClient, Path, dict[str, str]],
) -> None:
    """What a live stream asks each tick (`Access.still_allowed`)."""
    _, path, _ = keyed
    guard = access(path)
    assert guard.still_allowed("desk", None) and guard.still_allowed("desk", time.time() + 60)
    assert not guard.still_allowed("desk", time.time() - 1)  # its token expired
    assert not guard.still_allowed(None, None) and not guard.still_allowed("nobody", None)
    revoke_key(path, "desk")
    time.sleep(1.1)
    assert not guard.still_allowed("desk", None)
    assert guard.still_allowed("ops", None)
    assert access(None).still_allowed(None, None)  # no keys configured: open
