"""The access guard authorises the route the router serves: for any path, the scope it asks
for is the scope of the route the app's own router picks. Requests go straight into the ASGI
app with hand-made paths (an HTTP client would normalise `..` and encodings away), over the
real ingress's route table."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote

import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from deployments.http.access import Access, KeyRing, RateLimits, Scope, Sessions, add_key
from deployments.http.auth import AccessGuard
from deployments.http.routes import ambiguous, leaf_routes

# The policy, written out independently of `deployments.http.access`: who may call what.
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/dashboard"),
    ("GET", "/dashboard/{asked}"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
    ("GET", "/docs/oauth2-redirect"),
}
NEEDS = {
    ("POST", "/v1/transactions"): "score",
    ("POST", "/v1/transactions/batch"): "score",
    ("POST", "/v1/feedback"): "score",
    ("GET", "/v1/transactions/{transaction_id}"): "analyst",
    ("POST", "/v1/reviews/{transaction_id}"): "analyst",
    ("GET", "/v1/reviews"): "analyst",
    ("GET", "/v1/labels"): "analyst",
    ("GET", "/v1/live"): "analyst",
    ("GET", "/v1/live/stream"): "analyst",
    ("GET", "/v1/model"): "analyst",
    ("GET", "/v1/drift"): "analyst",
    ("GET", "/v1/cases/{transaction_id}"): "analyst",
    ("POST", "/v1/policy/preview"): "analyst",
    ("POST", "/v1/session"): "analyst",
}  # every other route, and no route at all: admin


def ingress_twin() -> FastAPI:
    """An app with the real ingress's routes (paths, methods, order), each answering with the
    template it was routed by, behind the real guard."""
    from deployments.http.ingress import app as ingress_app

    def answer(template: str) -> Any:
        async def served(request: Request) -> JSONResponse:
            return JSONResponse({"route": template})

        return served

    app = FastAPI()
    for route in leaf_routes(ingress_app.router.routes):
        if isinstance(route, APIRoute):
            app.add_api_route(route.path, answer(route.path_format), methods=sorted(route.methods))
    return app


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> tuple[FastAPI, dict[str, str]]:
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    keys = {
        "all": add_key(path, "all", set(Scope)),
        "score": add_key(path, "payments", {Scope.score}),
        "analyst": add_key(path, "desk", {Scope.analyst}),
        "admin": add_key(path, "ops", {Scope.admin}),
    }
    access = Access(KeyRing(path), Sessions(b"s" * 32, 10), RateLimits("memory://", None))
    app = ingress_twin()
    app.add_middleware(AccessGuard, find_access=lambda: access, router=app.router)
    return app, keys


def call(app: FastAPI, method: str, raw: str, key: str | None) -> tuple[int, bytes]:
    """One request into the ASGI app as a server would hand it over: `path` decoded once."""
    headers = [(b"content-type", b"application/json")]
    if key is not None:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": unquote(raw), "raw_path": raw.encode(), "root_path": "",
        "query_string": b"", "headers": headers, "server": ("test", 80),
        "client": ("127.0.0.1", 1), "state": {},
    }  # fmt: skip
    status, body = 0, b""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")

    asyncio.run(app(scope, receive, send))
    return status, body


PIECES = ["v1", "V1", "transactions", "batch", "reviews", "policy", "rules", "live", "stream",
          "session", "healthz", "dashboard", "case", "cases", "preview", "labels", "model", "audit",
          "feedback", "stats", "t-1", "..", ".", "", "x;y"]  # fmt: skip


def _encode(text: str, times: int) -> str:
    for _ in range(times):
        text = "".join(f"%{ord(c):02X}" for c in text)
    return text


@st.composite
def paths(draw: st.DrawFn) -> str:
    """Paths over the API's own words: plain, percent-encoded once or twice, joined by `/`,
    an encoded `/`, or `//`."""
    parts = []
    for _ in range(draw(st.integers(1, 5))):
        piece = draw(st.sampled_from(PIECES))
        parts.append(_encode(piece, draw(st.sampled_from([0, 0, 0, 1, 2]))))
        parts.append(draw(st.sampled_from(["/", "/", "/", "%2F", "%252F", "//"])))
    return "/" + "".join(parts[:-1])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from(["GET", "POST", "PUT", "HEAD"]), raw=paths())
@example(method="GET", raw="/v1/transactions/x%252F..%252F..%252F..%252Fhealthz")
@example(method="POST", raw="/v1/reviews/x%252F..%252F..%252F..%252Fv1%252Ftransactions")
@example(method="GET", raw="/v1/transactions/x%2F..%2F..%2F..%2Fhealthz")
@example(method="PUT", raw="/v1/reviews/%2e%2e/policy/rules")
@example(method="PUT", raw="/v1/transactions/..%2F..%2Fpolicy/rules")
def test_the_scope_checked_is_the_scope_of_the_route_served(
    guarded: tuple[FastAPI, dict[str, str]], method: str, raw: str
) -> None:
    app, keys = guarded
    status, body = call(app, method, raw, keys["all"])
    if status == 400:  # refused before any route: for every caller, and only when ambiguous
        assert ambiguous(unquote(raw))
        assert all(call(app, method, raw, k)[0] == 400 for k in (None, keys["score"]))
        return
    assert not ambiguous(unquote(raw))
    route = orjson.loads(body)["route"] if status == 200 else None
    lookup = ("GET" if method == "HEAD" else method, route)
    need = None if lookup in PUBLIC else NEEDS.get(lookup, "admin")  # type: ignore[arg-type]
    for holder in ("score", "analyst", "admin"):
        got, again = call(app, method, raw, keys[holder])
        if need is None or need == holder:
            assert (got, again) == (status, body), (holder, route)  # served the same route
        else:
            assert got == 403, (holder, route, got)
    unkeyed = call(app, method, raw, None)[0]
    assert unkeyed == (status if need is None else 401), (route, unkeyed)


def test_the_twin_has_every_route_of_the_ingress() -> None:
    """The property runs over the real route table, Serve's included router opened."""
    from deployments.http.ingress import app as ingress_app

    templates = {
        (m, r.path_format)
        for r in leaf_routes(ingress_app.router.routes)
        if isinstance(r, APIRoute)
        for m in r.methods
    }
    assert set(NEEDS) <= templates
    assert {("GET", "/dashboard"), ("GET", "/dashboard/{asked}")} <= templates  # public
    assert ("PUT", "/v1/policy/rules") in templates and ("GET", "/v1/stats") in templates


def test_an_id_that_decodes_into_another_path_reads_nothing_without_a_key(
    guarded: tuple[FastAPI, dict[str, str]],
) -> None:
    """The reported bypass: an id holding `%2F..%2F` fetched with one more encoding."""
    app, keys = guarded
    for method, raw in [
        ("GET", "/v1/transactions/a%252F..%252F..%252F..%252Fhealthz"),
        ("POST", "/v1/reviews/a%252F..%252F..%252F..%252Fhealthz"),
        ("POST", "/v1/reviews/a%252F..%252F..%252F..%252Fv1%252Ftransactions"),
    ]:
        assert call(app, method, raw, None)[0] == 400
        assert call(app, method, raw, keys["score"])[0] == 400
    # Decoded once, the path has more segments: no route, so admin's (and a 404 for admin).
    assert call(app, "GET", "/v1/transactions/a%2F..%2F..%2Fhealthz", None)[0] == 401
    assert call(app, "GET", "/v1/transactions/a%2F..%2F..%2Fhealthz", keys["admin"])[0] == 404


def test_ambiguous_means_one_more_decoding_would_change_the_segments() -> None:
    """`ambiguous` is what the 400 rests on: encoded separators and dot segments only."""
    assert ambiguous("/v1/transactions/a%2Fb") and ambiguous("/v1/transactions/a%5Cb")
    assert ambiguous("/v1/%2e%2e/x") and ambiguous("/v1/%2E/x")
    assert not ambiguous("/v1/transactions/50%off") and not ambiguous("/v1/transactions/a.b")
    assert not ambiguous("/v1/transactions/%41bc")  # decodes to a plain segment
