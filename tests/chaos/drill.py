"""Running a drill (a script with its own Ray cluster) from a test: a separate process,
bounded in time, whose last JSON line is its result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_drill(module: str, *args: str, timeout_s: int = 300) -> tuple[int, dict[str, Any]]:
    """(exit status, result) of `python -m module args...`; fails the test with the
    script's output if it printed no result. RAY_ADDRESS is dropped so the drill starts
    its own cluster, never joining the test session's."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.returncode, json.loads(lines[-1])
