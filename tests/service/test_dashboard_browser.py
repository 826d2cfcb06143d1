"""The analyst console (console/, a Next.js static export) in a real browser: Debian's headless
Chromium, driven by Selenium, against the service.

While a small stream is replayed, the live view must receive WebSocket frames and its numbers
must change; a REVIEW opens as a case with the card's history and normal, and is resolved
there with a note; a rule edit shows its preview on the newest decisions before it is saved;
an id and a note carrying markup are shown as text. A screenshot of each view is saved
(data/test-artifacts/console-*.png; docs/console/ holds the ones the docs show).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.ray

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "data" / "test-artifacts"
MARKED = "dash<i>marked<i>1"  # an id with markup in it (ids may hold any visible character)
NOTE = '<img src=x onerror="window.pwned=1">chargeback confirmed'


def browser():  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Debian's chromium and chromium-driver are needed (.ci/run installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
        "--window-size=1400,1000",
    ):  # fmt: skip
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def replay(url: str, stop: threading.Event, sent: list[int]) -> None:
    """A small steady stream (bounded: 600 transactions or 60 s)."""
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url, timeout=30) as c:
        for i in range(600):
            if stop.is_set() or time.monotonic() > deadline:
                return
            body = {
                "transaction_id": f"dash-{i}",
                "user_id": f"dash-u{i % 40}",
                "terminal_id": f"dash-t{i % 25}",
                "amount": 5.0 + (i * 37) % 300,
                "timestamp": f"2018-07-01T{10 + i // 3600:02d}:{(i // 60) % 60:02d}:{i % 60:02d}",
            }
            c.post("/v1/transactions", json=body)
            sent.append(i)
            time.sleep(0.02)


def shoot(driver: Any, name: str) -> None:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"console-{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000, name  # a page, not a blank


def text(driver: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, element_id).text)


def number(driver: Any, element_id: str) -> float:
    shown = text(driver, element_id).replace(",", "")
    return float(shown) if shown not in ("", "–") else -1.0


def go(driver: Any, wait: Any, label: str) -> None:
    """Follow a navigation link, as an analyst does (client-side navigation)."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.LINK_TEXT, label).click()
    wait.until(lambda d: "active" in d.find_element(By.LINK_TEXT, label).get_attribute("class"))


def test_the_console_live_case_rules_and_markup_as_text(service: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    c = httpx.Client(base_url=service, timeout=30)
    # An everyday amount the model lets through and the replay never sends: only the rule
    # makes it a REVIEW.
    rule = {"id": "dash-review", "when": "amount > 33.33 and amount < 33.34", "action": "REVIEW"}
    assert c.put("/v1/policy/rules", json={"rules": [rule]}).status_code == 200
    time.sleep(1.5)  # every ingress replica polls the policy version
    for i in range(6):  # the card's history before the case: its normal
        earlier = {
            "transaction_id": f"dash-hist-{i}", "user_id": "dash-reviewed-card",
            "terminal_id": f"dash-t-h{i % 2}", "amount": 20.0 + i,
            "timestamp": f"2018-06-{20 + i:02d}T12:00:00",
        }  # fmt: skip
        assert c.post("/v1/transactions", json=earlier).status_code == 200
    flagged = {
        "transaction_id": MARKED,
        "user_id": "dash-reviewed-card",
        "terminal_id": "dash-t-review",
        "amount": 33.335,
        "timestamp": "2018-07-01T09:00:00",
    }
    assert c.post("/v1/transactions", json=flagged).json()["decision"] == "REVIEW"

    stop, sent = threading.Event(), []
    loader = threading.Thread(target=replay, args=(service, stop, sent), daemon=True)
    loader.start()
    driver = browser()
    try:
        driver.get(f"{service}/dashboard/")
        wait = WebDriverWait(driver, 30, poll_frequency=0.2)
        # Live: WebSocket frames arrive and the numbers move.
        wait.until(lambda d: text(d, "connection") == "live")
        first_frames, first_total = number(driver, "frames"), number(driver, "total")
        wait.until(lambda d: number(d, "frames") >= first_frames + 3)
        wait.until(lambda d: number(d, "total") > first_total)
        wait.until(lambda d: number(d, "tps") > 0)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#flagged tbody tr"))
        time.sleep(1.5)  # let the charts fill for the picture
        shoot(driver, "live")

        # The review queue lists the case (oldest first): its id as text, not markup.
        go(driver, wait, "Reviews")
        link = wait.until(lambda d: d.find_elements(By.LINK_TEXT, MARKED) or False)[0]
        assert not driver.find_elements(By.CSS_SELECTOR, "#reviews td i")
        shoot(driver, "reviews")

        # The case: its features beside the card's normal, the card's history, the verdict.
        link.click()
        wait.until(lambda d: d.find_elements(By.ID, "case-id") and text(d, "case-id") == MARKED)
        assert not driver.find_elements(By.CSS_SELECTOR, "#case-id i")
        assert "dash-review" in text(driver, "case-rules")
        history = driver.find_elements(By.CSS_SELECTOR, "#card-history tbody tr")
        assert len(history) == 6
        features = driver.find_elements(By.CSS_SELECTOR, "#case-features tbody tr")
        no_normal = ("not per card", "no earlier")
        with_normal = [r for r in features if not any(w in r.text for w in no_normal)]
        assert with_normal  # the card's six earlier transactions give its own features a normal
        driver.find_element(By.ID, "resolve-note").send_keys(NOTE)
        driver.find_element(By.CSS_SELECTOR, "button.resolve-fraud").click()
        wait.until(lambda d: d.find_elements(By.ID, "review-status"))
        assert NOTE in text(driver, "review-status")  # the note as typed, as text
        assert not driver.find_elements(By.CSS_SELECTOR, "#review-status img")
        assert driver.execute_script("return window.pwned === undefined")
        shoot(driver, "case")

        # Rules: a change is previewed on the newest decisions, then saved.
        go(driver, wait, "Rules and lists")
        wait.until(lambda d: text(d, "policy-version") not in ("", "–"))
        version = int(text(driver, "policy-version"))
        editor = driver.find_element(By.ID, "rules-text")
        editor.clear()
        big = {"id": "dash-big", "when": "amount > 100 and amount < 200", "action": "REVIEW"}
        proposed = [rule, big]
        editor.send_keys(json.dumps(proposed))
        assert driver.find_element(By.ID, "rules-save").get_attribute("disabled")  # preview first
        driver.find_element(By.ID, "rules-preview").click()
        wait.until(lambda d: d.find_elements(By.ID, "preview-changed"))
        assert number(driver, "preview-rows") > 0 and number(driver, "preview-changed") > 0
        assert "dash-big" in text(driver, "preview-rules")
        shoot(driver, "rules")
        driver.find_element(By.ID, "rules-save").click()
        wait.until(lambda d: "saved as version" in text(d, "rules-status"))
        assert int(text(driver, "policy-version")) == version + 1

        go(driver, wait, "Models and drift")
        wait.until(lambda d: d.find_elements(By.ID, "served-version"))
        shoot(driver, "models")
        go(driver, wait, "Audit")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#audit tbody tr")) >= 2)
        shoot(driver, "audit")
    finally:
        stop.set()
        driver.quit()
        loader.join(timeout=10)
        c.put("/v1/policy/rules", json={"rules": [], "comment": "console test done"})
    resolved = c.get("/v1/reviews", params={"status": "fraud"}).json()["items"]
    assert MARKED in [i["transaction_id"] for i in resolved]
    stored = next(i for i in resolved if i["transaction_id"] == MARKED)
    assert stored["note"] == NOTE  # stored as sent; only the page must not run it
    assert c.get(f"/v1/transactions/{MARKED}").json()["label"]["source"] == "review"
    audit = c.get("/v1/audit", params={"limit": 1000}).json()["entries"]
    saved = [e for e in audit if e["action"] == "policy.rules"]
    assert any("dash-big" in json.dumps(e["after"]) for e in saved)
    assert len(sent) > 0
