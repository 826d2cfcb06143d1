"""Stage timestamps inside one request: where a single transaction's time goes.

A request that asks for them (header `x-fraud-timing`) carries a list of marks in a context
variable; the code on its path marks the end of each stage (`mark`), and the ingress answers
the durations in a standard `Server-Timing` header (`deployments.http.timing`). A request
that does not ask pays one context-variable read per mark. A micro-batch group runs in a
task started by one of its requests and carries that request's marks (at c=1, its only one).
`python -m benchmarks stages` reads them for the c=1 breakdown in BENCHMARKS.md.
"""

from __future__ import annotations

import itertools
import time
from contextvars import ContextVar, Token

Marks = list[tuple[str, int]]  # (stage that ended, perf_counter_ns)
_MARKS: ContextVar[Marks | None] = ContextVar("fraud_stage_marks", default=None)
# The stages of a single transaction, in order; each mark ends the stage it names.
STAGES = ("parse", "queue", "keys", "state", "model", "decide", "record", "respond")


def begin() -> tuple[Marks, Token[Marks | None]]:
    """Start timing this request (and the tasks it starts from now on)."""
    marks: Marks = [("start", time.perf_counter_ns())]
    return marks, _MARKS.set(marks)


def end(token: Token[Marks | None]) -> None:
    _MARKS.reset(token)


def mark(stage: str) -> None:
    """The named stage of the timed request on this path (if any) ends now."""
    marks = _MARKS.get()
    if marks is not None:
        marks.append((stage, time.perf_counter_ns()))


def server_timing(marks: Marks) -> bytes:
    """`Server-Timing` header value: each stage's duration in ms, then the total. A stage
    marked twice (a group of requests) counts from its first mark."""
    first: dict[str, int] = {}
    for stage, at in marks:
        first.setdefault(stage, at)
    ordered = list(first.items())
    parts = [
        f"{stage};dur={(at - before) / 1e6:.3f}"
        for (_, before), (stage, at) in itertools.pairwise(ordered)
    ]
    parts.append(f"total;dur={(ordered[-1][1] - ordered[0][1]) / 1e6:.3f}")
    return ", ".join(parts).encode()
