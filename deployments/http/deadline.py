"""Each answer's time budget: the configured `deadline_ms`, or less when the client asks
(`x-fraud-deadline-ms`), as a point on the event loop's clock."""

from __future__ import annotations

import asyncio
import math

from actors.errors import Invalid

HEADER = "x-fraud-deadline-ms"


def deadline_for(asked: str | None, most_ms: float) -> float:
    """When the answer is due: `most_ms` from now, or the client's shorter budget."""
    ms = most_ms
    if asked is not None:
        try:
            ms = float(asked)
        except ValueError:
            ms = math.nan
        if not (math.isfinite(ms) and ms > 0):
            raise Invalid(f"{HEADER}: a positive number of milliseconds")
    return asyncio.get_running_loop().time() + min(ms, most_ms) / 1000
