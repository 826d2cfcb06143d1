"""Typed calls to the analyst's desk, wherever it runs (a Ray actor or in process).

`DeskClient` has one method per desk operation, with the desk's own signature: a caller
never names a method by string. What carries the call is a `DeskCall`: the Ray actor
client's retrying call, or a direct call on an in-process `Desk` (tests, `fraud backtest`).
`PendingDecisions` holds the LEGIT-only batches between two reports to the desk.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import numpy as np

from actors.actor.decision_log import DecidedBatch
from actors.actor.desk import Desk, PolicyWrite

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
MAX_PENDING_ROWS = 200_000  # LEGIT decisions held for the desk while it is unreachable


class DeskCall(Protocol):
    """Run `method` of the desk with these arguments and return its answer."""

    async def __call__(
        self, method: Callable[Concatenate[Desk, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> R: ...


def local_call(desk: Desk) -> DeskCall:
    """A `DeskCall` on an in-process desk."""

    async def call(
        method: Callable[Concatenate[Desk, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        return method(desk, *args, **kwargs)

    return call


class DeskClient:
    """The desk's operations (see `actors.actor.desk.Desk` for what each does)."""

    def __init__(self, call: DeskCall) -> None:
        self._call = call
        # Run before every read: a replica's flagged decisions still in its outbox reach
        # the desk first, so a caller reads what it was answered (`actors.client.outbox`).
        self.before_read: Callable[[], Awaitable[object]] | None = None

    async def _read(
        self, method: Callable[Concatenate[Desk, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        if self.before_read is not None:
            try:
                await self.before_read()
            except Exception as e:  # the read says whether the desk is there
                log.warning("outbox not delivered before a read: %s", type(e).__name__)
        return await self._call(method, *args, **kwargs)

    # -- writes ---------------------------------------------------------------------------
    async def record(self, batch: DecidedBatch) -> int:
        return await self._call(Desk.record, batch)

    async def record_many(self, batches: list[DecidedBatch]) -> int:
        return await self._call(Desk.record_many, batches)

    async def tick(
        self,
        replica: str,
        batches: list[DecidedBatch],
        latencies_ms: np.ndarray,
        shadow: dict[str, Any],
        drift: dict[str, Any] | None = None,
    ) -> dict[str, int]:
        return await self._call(Desk.tick, replica, batches, latencies_ms, shadow, drift)

    async def label(self, ids: list[str], is_fraud: list[bool], source: str) -> int:
        return await self._call(Desk.label, ids, is_fraud, source)

    async def resolve(
        self, tx_id: str, outcome: str, analyst: str, note: str, key_id: str | None
    ) -> dict[str, Any]:
        return await self._call(Desk.resolve, tx_id, outcome, analyst, note, key_id)

    async def put_policy(
        self,
        rules: list[dict[str, Any]],
        lists: dict[str, np.ndarray],
        comment: str,
        key_id: str | None,
        action: str,
        based_on: int | None = None,
    ) -> PolicyWrite:
        return await self._call(Desk.put_policy, rules, lists, comment, key_id, action, based_on)

    async def served_model(self, before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
        return await self._call(Desk.served_model, before, after)

    # -- reads ----------------------------------------------------------------------------
    async def transaction(self, tx_id: str) -> dict[str, Any] | None:
        return await self._read(Desk.transaction, tx_id)

    async def label_of(self, tx_id: str) -> dict[str, Any] | None:
        return await self._read(Desk.label_of, tx_id)

    async def case(self, tx_id: str, card_limit: int, terminal_limit: int) -> dict[str, Any] | None:
        return await self._read(Desk.case, tx_id, card_limit, terminal_limit)

    async def labels_by_key(self, keys: list[int]) -> dict[int, bool]:
        return await self._read(Desk.labels_by_key, keys)

    async def review_page(
        self, status: str, limit: int, offset: int, min_score: float, rule: str | None
    ) -> dict[str, Any]:
        return await self._read(Desk.review_page, status, limit, offset, min_score, rule)

    async def review(self, tx_id: str) -> dict[str, Any] | None:
        return await self._read(Desk.review, tx_id)

    async def labels(self, offset: int, limit: int) -> dict[str, Any]:
        return await self._read(Desk.labels, offset, limit)

    async def policy_version(self) -> int:
        return await self._read(Desk.policy_version)

    async def policy(self, version: int) -> dict[str, Any] | None:
        """A stored policy version, or None if there is no such version."""
        return await self._read(Desk.policy, version)

    async def current_policy(self) -> dict[str, Any]:
        current = await self._read(Desk.policy, None)
        assert current is not None, "the desk always has a current policy"
        return current

    async def policy_history(self) -> list[dict[str, Any]]:
        return await self._read(Desk.policy_history)

    async def snapshot(self) -> dict[str, Any]:
        return await self._read(Desk.snapshot)

    async def stats(self) -> dict[str, Any]:
        return await self._read(Desk.stats)

    async def audit_page(self, offset: int, limit: int) -> dict[str, Any]:
        return await self._read(Desk.audit_page, offset, limit)

    async def webhooks(self) -> dict[str, Any]:
        return await self._read(Desk.webhooks)


class PendingDecisions:
    """LEGIT-only batches waiting for the next report to the desk (one desk call per tick,
    not per request). Bounded: while the desk is away the oldest are dropped and counted,
    since LEGIT history is a recent view, not a record."""

    def __init__(self, max_rows: int = MAX_PENDING_ROWS) -> None:
        self.max_rows = max_rows
        self._batches: list[DecidedBatch] = []
        self._rows = 0
        self.dropped_rows = 0

    def add(self, batch: DecidedBatch) -> None:
        self._batches.append(batch)
        self._rows += len(batch)
        while self._rows > self.max_rows and len(self._batches) > 1:
            dropped = self._batches.pop(0)
            self._rows -= len(dropped)
            self.dropped_rows += len(dropped)

    def take(self) -> list[DecidedBatch]:
        batches, self._batches, self._rows = self._batches, [], 0
        return batches

    def put_back(self, batches: list[DecidedBatch]) -> None:
        """Batches whose desk call failed: kept, oldest first, for the next tick."""
        self._batches[:0] = batches
        self._rows += sum(len(b) for b in batches)
