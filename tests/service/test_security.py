"""Access control on the running service: a second ingress over the same shards, with
scoped keys on. Scopes, revocation, path tricks, rate limits, the audit log and the
dashboard's sign-in, over real HTTP (Serve's proxy) and in a real browser."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.http.access import Scope, add_key, revoke_key
from tests.service.conftest import wait_healthy

pytestmark = pytest.mark.ray
PREFIX = "/secure"


def tx(i: int, card: str = "sec-card") -> dict[str, Any]:
    return {
        "transaction_id": f"sec-{i}",
        "user_id": card,
        "terminal_id": "sec-term",
        "amount": 12.5,
        "timestamp": f"2018-08-01T10:{i // 60:02d}:{i % 60:02d}",
    }


@pytest.fixture(scope="module")
def secure(
    service: str, app_args: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """The same app (shards, desk, id key, state) behind an ingress that asks for keys."""
    from ray import serve

    from deployments.app import build_app

    path = tmp_path_factory.mktemp("keys") / "keys.json"
    keys = {
        "score": add_key(path, "payments", {Scope.score}),
        "slow": add_key(path, "slow", {Scope.score}, rate="4/minute"),
        "analyst": add_key(path, "desk", {Scope.analyst}),
        "admin": add_key(path, "ops", {Scope.admin}),
        "watcher": add_key(path, "watcher", {Scope.analyst}),  # revoked by a test
        "scorer": add_key(path, "scorer", {Scope.score}),  # "score" is revoked by a test
    }
    console = console_export(f"{PREFIX}/dashboard")  # a static export's base path is built in
    args = {**app_args, "access": {"keys_file": str(path)}, "console_dir": console}
    serve.run(build_app(args), name="fraud-secure", route_prefix=PREFIX)
    url = service + PREFIX
    wait_healthy(url, "secure app")
    yield url, path, keys
    serve.delete("fraud-secure")  # the shards are the main app's: they stay


def console_export(base_path: str) -> str:
    """The console built for an app under a route prefix (console/next.config.ts), into a
    folder of its own beside the default export; its path relative to the project root."""
    import os
    import subprocess

    folder = ".export-" + base_path.strip("/").replace("/", "-")
    env = {**os.environ, "CONSOLE_BASE_PATH": base_path, "CONSOLE_DIST_DIR": folder,
           "NEXT_TELEMETRY_DISABLED": "1"}  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    built = subprocess.run(
        ["npx", "--no-install", "next", "build"], cwd=root / "console", env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    return f"console/{folder}"


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_scopes_revocation_limits_and_audit_on_the_service(
    secure: tuple[str, Path, dict[str, str]], service: str
) -> None:
    url, path, keys = secure
    with httpx.Client(base_url=url, timeout=30) as c:
        health = c.get("/healthz").json()
        assert health["auth"] == "on"
        r = c.post("/v1/transactions", json=tx(1))
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        r = c.post("/v1/transactions", json=tx(1), headers=auth(keys["score"]))
        assert r.status_code == 200
        # Built without pinned thresholds, this app decides with the model card's recall-first
        # pair, from its first answer on.
        from models.card import ModelDir

        card = ModelDir(Path(__file__).resolve().parents[2] / "models" / "default").read_card()
        th, score = card.thresholds, r.json()["score"]
        want = "BLOCK" if score > th.block else "REVIEW" if score > th.review else "LEGIT"
        assert r.json()["decision"] == want and th.review < 0.5
        served = c.get("/v1/model", headers=auth(keys["analyst"])).json()
        assert served["thresholds"] == th.model_dump(), served["thresholds"]
        batch = {"transactions": [tx(2), tx(3)]}
        r = c.post("/v1/transactions/batch", json=batch, headers=auth(keys["score"]))
        assert r.status_code == 200
        for route, good in [
            ("/v1/stats", "admin"),
            ("/v1/reviews", "analyst"),
            ("/v1/audit", "admin"),
        ]:
            for holder in ("score", "analyst", "admin"):
                status = c.get(route, headers=auth(keys[holder])).status_code
                assert status == (200 if holder == good else 403), (route, holder, status)
        # Path tricks through Serve's proxy: never an admin route for a weaker key.
        for raw in (
            "//v1/policy/rules",
            "/V1/policy/rules",
            "/v1/policy/rules/",
            "/v1/x/../policy/rules",
        ):
            r = c.put(raw, json={"rules": []}, headers=auth(keys["analyst"]))
            assert r.status_code in (401, 403, 404), (raw, r.status_code)
            assert r.status_code != 200
        # An admin change is audited under its key.
        rule = {"id": "sec-rule", "when": "amount > 99999", "action": "REVIEW"}
        body = {"rules": [rule], "comment": "security test"}
        assert c.put("/v1/policy/rules", json=body, headers=auth(keys["admin"])).status_code == 200
        entries = c.get("/v1/audit", params={"limit": 1000}, headers=auth(keys["admin"])).json()
        mine = [e for e in entries["entries"] if e["comment"] == "security test"]
        assert len(mine) == 1 and mine[0]["key_id"] == "ops"
        assert mine[0]["action"] == "policy.rules"
        assert [r["id"] for r in mine[0]["after"]["rules"]] == ["sec-rule"]
        assert any(e["action"] == "model.served" for e in entries["entries"])
        c.put("/v1/policy/rules", json={"rules": [], "comment": "security test done"},
              headers=auth(keys["admin"]))  # fmt: skip
        # One key's burst is throttled; another key's traffic is not.
        statuses = []
        for i in range(6):
            r = c.post("/v1/transactions", json=tx(10 + i, "slow-card"), headers=auth(keys["slow"]))
            statuses.append(r.status_code)
            ok = c.post("/v1/transactions", json=tx(20 + i), headers=auth(keys["score"]))
            assert ok.status_code == 200
        assert statuses[:4] == [200] * 4 and statuses[4:] == [429, 429]
        assert 1 <= int(r.headers["retry-after"]) <= 60
        # Revoked: refused within seconds, without a restart.
        revoke_key(path, "payments")
        deadline = time.monotonic() + 10
        while (
            c.post("/v1/transactions", json=tx(4), headers=auth(keys["score"])).status_code != 401
        ):
            assert time.monotonic() < deadline, "a revoked key still works"
            time.sleep(0.25)


def test_what_an_outside_attacker_found_is_closed(
    secure: tuple[str, Path, dict[str, str]],
) -> None:
    """Issue 27's findings, each over real HTTP through Serve's proxy."""
    url, path, keys = secure
    pan = "4111111111111111"
    with httpx.Client(base_url=url, timeout=30) as c:
        score, analyst, admin = auth(keys["scorer"]), auth(keys["analyst"]), auth(keys["admin"])
        # 1. An id that decodes into another path is refused, and so is fetching one.
        sneaky = {**tx(900), "transaction_id": "x%2F..%2F..%2F..%2Fhealthz"}
        r = c.post("/v1/transactions", json=sneaky, headers=score)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "transaction_id"
        for method, raw, headers in [
            ("GET", "/v1/transactions/x%252F..%252F..%252F..%252Fhealthz", {}),
            ("POST", "/v1/reviews/x%252F..%252F..%252F..%252Fhealthz", {}),
            ("POST", "/v1/reviews/x%252F..%252F..%252F..%252Fv1%252Ftransactions", score),
        ]:
            r = c.request(method, raw, json={"outcome": "legit"}, headers=headers)
            assert r.status_code == 400 and "path" in r.json()["detail"], (raw, r.status_code)
        r = c.post("/v1/reviews/x%2F..%2F..%2Fv1%2Ftransactions", json={"outcome": "legit"},
                   headers=score)  # fmt: skip
        assert r.status_code == 403  # no route, so admin's
        # 2 and 4. A rule the service could not evaluate is a 422 naming the field.
        for when in ("amount > 1" + "0" * 400, "amount > " + "+" * 480 + "1"):
            body = {"rules": [{"id": "typo", "when": when, "action": "BLOCK"}]}
            r = c.put("/v1/policy/rules", json=body, headers=admin)
            assert r.status_code == 422 and "rules.0.when" in r.json()["detail"], r.text[:200]
        assert c.post("/v1/transactions", json=tx(901), headers=score).status_code == 200
        # 3. A non-ASCII token is a 401, not a 500.
        r = c.get("/v1/reviews", headers={"authorization": b"Bearer fs.x.\xc3\xa9"})
        assert r.status_code == 401
        assert c.get("/v1/live/stream", params={"access_token": "fs.x.é"}).status_code == 401
        # 5. No echo of a card number or an unknown field's name.
        r = c.get(f"/v1/transactions/{pan}", headers=analyst)
        assert r.status_code == 404 and pan not in r.text
        junk = {pan: 1, "y" * 6500: 2, "note": pan}  # unknown fields: dropped, never echoed
        r = c.post("/v1/transactions", json={**tx(902), **junk, "amount": -1}, headers=score)
        assert r.status_code == 422 and pan not in r.text and len(r.content) < 1000
        r = c.post("/v1/transactions", json={**tx(905), **junk}, headers=score)
        assert r.status_code == 200 and pan not in r.text and len(r.content) < 1000
        # 6 and 7. C1 control characters in ids; numbers far beyond Unix seconds.
        r = c.post("/v1/transactions", json={**tx(903), "user_id": "card\x85x"}, headers=score)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "user_id"
        r = c.post("/v1/transactions", json={**tx(904), "timestamp": 1e12}, headers=score)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "timestamp"
        # 8. A live stream ends once its key is revoked.
        token = c.post("/v1/session", headers=auth(keys["watcher"])).json()["token"]
        events: list[str] = []
        params = {"access_token": token, "interval_s": 0.2}
        with c.stream("GET", "/v1/live/stream", params=params) as stream:
            assert stream.status_code == 200
            deadline = time.monotonic() + 20
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    events.append(line[7:])
                if events == ["live"]:
                    revoke_key(path, "watcher")
                assert time.monotonic() < deadline, f"the stream outlived its key: {events}"
        assert events[0] == "live" and events[-1] == "end"


def test_the_dashboard_signs_in_with_a_key_and_keeps_it_out_of_urls(
    secure: tuple[str, Path, dict[str, str]],
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.service.test_dashboard_browser import browser

    url, _, keys = secure
    driver = browser()
    try:
        driver.get(f"{url}/dashboard/")
        wait = WebDriverWait(driver, 30, poll_frequency=0.2)
        form = wait.until(lambda d: d.find_element(By.ID, "signin"))
        wait.until(lambda d: form.is_displayed())
        assert not driver.find_elements(By.ID, "connection")  # nothing live before sign-in
        driver.find_element(By.ID, "signin-key").send_keys(keys["slow"])  # the score scope
        form.find_element(By.CSS_SELECTOR, "button").click()
        wait.until(lambda d: "analyst" in d_text(d, "signin-status"))
        driver.find_element(By.ID, "signin-key").send_keys(keys["analyst"])
        driver.find_element(By.CSS_SELECTOR, "#signin button").click()
        wait.until(lambda d: d.find_elements(By.ID, "connection"))
        wait.until(lambda d: d_text(d, "connection") == "live")  # the WebSocket, with a token
        assert not driver.find_elements(By.ID, "signin")
        urls = driver.execute_script(
            "return performance.getEntriesByType('resource').map((e) => e.name)"
        )
        kept = driver.execute_script(
            "return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie"
        )
        assert all(keys["analyst"] not in u for u in [*urls, driver.current_url])
        assert keys["analyst"] not in kept  # the key lives in the page's memory only
    finally:
        driver.quit()


def d_text(driver: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, element_id).text)


def test_https_on_the_ingress_and_tls_on_shard_sockets() -> None:
    """Its own cluster and proxy (TLS is a proxy start option): `tests/chaos/tls_service.py`."""
    from tests.chaos.drill import run_drill

    status, result = run_drill("tests.chaos.tls_service")
    print(f"\ntls: {result}")
    assert status == 0 and result["ok"], result
    assert result["https_status"] == 200 and result["plain_http"] != 200
    assert set(result["shard_probes"]) == {"plain", "foreign_ca"}
