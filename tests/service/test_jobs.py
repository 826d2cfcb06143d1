"""The simulator as Ray Jobs, submitted exactly as docs/operations.md writes them, to a head
node of the test's own with token auth on: the generation job's parts hold the stream a
single process writes, and the replay job plays them against the service."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from features.parts import read_manifest
from features.transactions import read_transactions
from simulator.config import SimulationConfig
from simulator.generate import write_parquet
from tests.head import BIN, Head, start_head

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def head() -> Iterator[Head]:
    node = start_head()
    yield node
    node.stop()


def submit(head: Head, *command: str, timeout_s: float = 240) -> str:
    """`ray job submit --working-dir . --runtime-env runtime_env.yaml -- <command>` from the
    repository, as a user types it; returns its output, failing the test if the job did."""
    proc = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", head.dashboard, "--working-dir", ".",
         "--runtime-env", "runtime_env.yaml", "--", *command],
        cwd=REPO, env=head.env, capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "succeeded" in out, out[-4000:]
    return out


def test_the_token_is_required(head: Head) -> None:
    env = {**head.env, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_AUTH_TOKEN")
    proc = subprocess.run(
        [str(BIN / "ray"), "job", "list", "--address", head.dashboard],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "authentication" in (proc.stdout + proc.stderr).lower()


def test_simulate_and_replay_jobs(head: Head, service: str, tmp_path: Path) -> None:
    stream = tmp_path / "stream"
    submit(
        head, "python", "-m", "cli.main", "simulate", "--customers", "600", "--terminals",
        "1000", "--days", "6", "--seed", "5", "--workers", "3", "--output", str(stream),
    )  # fmt: skip
    assert read_manifest(stream).parts == 3
    cfg = SimulationConfig(n_customers=600, n_terminals=1_000, n_days=6, seed=5)
    write_parquet(cfg, tmp_path / "one.parquet")
    expected = read_transactions(tmp_path / "one.parquet")
    pd.testing.assert_frame_equal(read_transactions(stream), expected)

    report = tmp_path / "report.json"
    out = submit(
        head, "python", "-m", "cli.main", "replay", "--input", str(stream), "--workers", "3",
        "--url", service, "--id-prefix", "job-", "--concurrency", "2", "--batch", "16",
        "--json", str(report),
    )  # fmt: skip
    assert "3 Ray tasks" in out
    seen = json.loads(report.read_text())
    print(f"\nreplay job: {seen['answered']:,} answered of {len(expected):,}")
    assert seen["answered"] == len(expected) and not seen["errors"], seen
