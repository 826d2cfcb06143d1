"""schemathesis against the live service's OpenAPI spec, positive and negative data: no
server errors, and invalid data is rejected (4xx). Run through its CLI, bounded in cases
and time; the JSON report is kept for the totals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray


def test_schemathesis_finds_no_server_errors(service: str, tmp_path: Path) -> None:
    import httpx

    # The fuzzer may add valid rules and list entries: put the policy back afterwards.
    before = httpx.put(f"{service}/v1/policy/rules", json={"rules": []}, timeout=30).json()
    try:
        run_schemathesis(service, tmp_path)
    finally:
        r = httpx.post(f"{service}/v1/policy/rollback", json={"version": before["version"]})
        assert r.status_code == 200 and r.json()["rules"] == []
        assert r.json()["list_sizes"] == before["list_sizes"]


def run_schemathesis(service: str, tmp_path: Path) -> None:
    report = tmp_path / "schemathesis.json"
    st = Path(sys.executable).with_name("st")
    proc = subprocess.run(
        [
            str(st),
            "run",
            f"{service}/openapi.json",
            "--url",
            service,
            "--checks",
            "not_a_server_error,negative_data_rejection",
            "--mode",
            "all",
            "--max-examples",
            "25",
            "--max-time",
            "120",
            "--seed",
            "1",
            "--workers",
            "2",
            "--phases",
            "examples,coverage,fuzzing",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=400,
        env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
    )
    tail = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    print("\n" + "\n".join(line for line in proc.stdout.splitlines()[-12:]))
    if report.exists():
        data = json.loads(report.read_text())
        assert data, "empty schemathesis report"
