"""Each answer's time budget: the configured `deadline_ms`, or less when the client asks
(`x-fraud-deadline-ms`); what it gives the wait for state, as a point on the event loop's
clock."""

from __future__ import annotations

import asyncio
import math

from actors.errors import Invalid

HEADER = "x-fraud-deadline-ms"


def deadline_for(asked: str | None, most_ms: float, reserve_ms: float = 0.0) -> float:
    """When the wait for state ends: the budget (`most_ms` from now, or the client's shorter
    one) less `reserve_ms` (at most half of it), which the rest of the answer needs (the
    note of a late step, the model, the record, the response) to be out within it."""
    ms = most_ms
    if asked is not None:
        try:
            ms = float(asked)
        except ValueError:
            ms = math.nan
        if not (math.isfinite(ms) and ms > 0):
            raise Invalid(f"{HEADER}: a positive number of milliseconds")
    budget = min(ms, most_ms)
    return asyncio.get_running_loop().time() + (budget - min(reserve_ms, budget / 2)) / 1000
