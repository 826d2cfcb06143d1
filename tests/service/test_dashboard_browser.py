"""The live dashboard in a real browser: Debian's headless Chromium, driven by Selenium.

While a small stream is replayed against the service, the page's numbers must change, and
resolving a review with its button must reach the review queue. A screenshot is saved.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.ray

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "data" / "test-artifacts"


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


def test_dashboard_updates_live_and_resolves_a_review(service: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    c = httpx.Client(base_url=service, timeout=30)
    # An everyday amount the model lets through and the replay never sends: only the rule
    # makes it a REVIEW.
    rule = {"id": "dash-review", "when": "amount > 33.33 and amount < 33.34", "action": "REVIEW"}
    assert c.put("/v1/policy/rules", json={"rules": [rule]}).status_code == 200
    time.sleep(1.5)  # every ingress replica polls the policy version
    flagged = {
        "transaction_id": "dash-review-1",
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
        driver.get(f"{service}/dashboard")
        wait = WebDriverWait(driver, 30, poll_frequency=0.2)
        wait.until(lambda d: d.find_element(By.ID, "connection").text == "live")
        wait.until(lambda d: d.find_element(By.ID, "total").text not in ("–", ""))
        first = int(driver.find_element(By.ID, "total").text.replace(",", ""))
        wait.until(lambda d: int(d.find_element(By.ID, "total").text.replace(",", "")) > first)
        wait.until(lambda d: d.find_element(By.ID, "tps").text not in ("–", "0.0"))
        row = wait.until(
            lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-tx="dash-review-1"]') or False
        )
        assert "TX_AMOUNT" in row[0].text or "rule dash-review" in row[0].text
        row[0].find_element(By.CSS_SELECTOR, "button.resolve-fraud").click()
        wait.until(lambda d: "resolved as fraud" in d.find_element(By.ID, "resolve-status").text)
        time.sleep(1.5)  # let the chart and tables fill for the picture
        shot = tmp_path / "dashboard.png"
        driver.save_screenshot(str(shot))
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, SCREENSHOT_DIR / "dashboard.png")
        assert shot.stat().st_size > 10_000
    finally:
        stop.set()
        driver.quit()
        loader.join(timeout=10)
        c.put("/v1/policy/rules", json={"rules": [], "comment": "dashboard test done"})
    resolved = c.get("/v1/reviews", params={"status": "fraud"}).json()["items"]
    assert "dash-review-1" in [i["transaction_id"] for i in resolved]
    assert c.get("/v1/transactions/dash-review-1").json()["label"]["source"] == "review"
    assert len(sent) > 0
