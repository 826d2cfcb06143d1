"""Stopping the process groups a test started itself, and only those."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable


def signal_group(group: int, sig: int) -> bool:
    """Send `sig` to the group; False once no process of it is left."""
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    return True


def stop_groups(groups: Iterable[int], grace_s: float = 10.0) -> None:
    """SIGTERM, up to `grace_s` for them to end, then SIGKILL to what is left."""
    groups = list(groups)
    for group in groups:
        signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(signal_group(g, 0) for g in groups):
        time.sleep(0.2)
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
