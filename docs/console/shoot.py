"""The screenshots of docs/operations.md, "A day at the desk", taken from a running service.

    .venv/bin/fraud demo --keep-running   # in one terminal: the demo's service stays up
    .venv/bin/python docs/console/shoot.py [--url http://127.0.0.1:8000]

Debian's headless Chromium through Selenium (as the browser test), one picture per view into
this folder. With keys on, FRAUD_CONSOLE_KEY holds the key to sign in with. The rules view is
shown with a rule previewed, never saved.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

PREVIEWED = [
    {
        "id": "night-spend",
        "when": "amount > 120 and night == 1",
        "action": "REVIEW",
        "description": "larger amounts at night",
        "enabled": True,
    }
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    args = ap.parse_args()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.service.test_dashboard_browser import browser, go, number, text

    driver: Any = browser()
    wait = WebDriverWait(driver, 60, poll_frequency=0.2)

    def shoot(name: str) -> None:
        time.sleep(1.0)
        driver.save_screenshot(str(HERE / f"{name}.png"))
        print(f"{HERE / name}.png")

    try:
        driver.get(f"{args.url}/dashboard/")
        key = os.environ.get("FRAUD_CONSOLE_KEY")
        if key:
            wait.until(lambda d: d.find_elements(By.ID, "signin-key"))
            driver.find_element(By.ID, "signin-key").send_keys(key)
            driver.find_element(By.CSS_SELECTOR, "#signin button").click()
        wait.until(lambda d: d.find_elements(By.ID, "frames") and number(d, "frames") >= 3)
        shoot("live")
        go(driver, wait, "Reviews")
        links = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#reviews a.case-link"))
        link = links[-1]  # the newest listed: its card has history held before it
        shoot("reviews")
        link.click()
        wait.until(lambda d: d.find_elements(By.ID, "case-features"))
        shoot("case")
        go(driver, wait, "Rules and lists")
        wait.until(lambda d: text(d, "policy-version") not in ("", "–"))
        editor = driver.find_element(By.ID, "rules-text")
        editor.clear()
        editor.send_keys(json.dumps(PREVIEWED))
        driver.find_element(By.ID, "rules-preview").click()
        wait.until(lambda d: d.find_elements(By.ID, "preview-changed"))
        shoot("rules")
        go(driver, wait, "Models and drift")
        wait.until(lambda d: d.find_elements(By.ID, "served-version"))
        shoot("models")
        go(driver, wait, "Audit")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#audit"))
        shoot("audit")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
