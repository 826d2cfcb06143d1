"""One partition of the stream path: read a micro-batch, score it, write decisions, ack.

Acknowledged only after the decisions are written, and those only after the shards have
journaled the transactions: a crash anywhere leaves the entries pending, and they are read
again (by this consumer on restart, or reclaimed by another after `reclaim_idle_ms`). A
re-read transaction is answered from the shards' dedup index, so state changes once; its
decision may be written twice (consumers of the results key on `transaction_id`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from itertools import groupby
from typing import Any

import orjson
from pydantic import ValidationError

from deployments.redis_streams import result_fields
from deployments.schemas import LabelIn, ScoreOut, TransactionIn
from deployments.streams import LABEL, TX, Entry, StreamConfig, StreamSource

log = logging.getLogger(__name__)
ScoreItems = Callable[[Sequence[TransactionIn]], Awaitable[list[ScoreOut | None]]]
Feedback = Callable[[Sequence[LabelIn]], Awaitable[list[str]]]


def _invalid(src: str, body: bytes, error: ValidationError | str) -> dict[str, Any]:
    """A decision-stream entry for input that failed validation (fields named, no echo)."""
    if isinstance(error, ValidationError):
        fields = sorted({".".join(str(p) for p in e["loc"]) or "body" for e in error.errors()})
        message = f"invalid {', '.join(fields)}"
    else:
        message = error
    try:
        tx_id = str(orjson.loads(body).get("transaction_id", ""))[:64]
    except (orjson.JSONDecodeError, AttributeError):
        tx_id = ""
    return {"transaction_id": tx_id, "decision": "INVALID", "score": "", "model_version": "",
            "src": src, "body": orjson.dumps({"error": message})}  # fmt: skip


class PartitionWorker:
    def __init__(
        self,
        partition: int,
        source: StreamSource,
        score_items: ScoreItems,
        feedback: Feedback,
        config: StreamConfig,
    ) -> None:
        self.partition, self.source = partition, source
        self.score_items, self.feedback, self.config = score_items, feedback, config
        self.transactions = self.labels = self.invalid = self.failures = self.reclaimed = 0

    async def run(self, stop: asyncio.Event) -> None:
        pending = True  # first our own unacknowledged entries, from before a restart
        next_reclaim = 0.0
        delay = 0.1
        while not stop.is_set():
            try:
                if time.monotonic() >= next_reclaim:
                    claimed = await self.source.reclaim(self.partition, self.config.reclaim_idle_ms)
                    self.reclaimed += claimed
                    pending = pending or claimed > 0
                    next_reclaim = time.monotonic() + self.config.reclaim_idle_ms / 2000
                entries = await self.source.read(
                    self.partition, self.config.read_count, self.config.block_ms, pending
                )
                if pending and not entries:
                    pending = False
                    continue
                if entries:
                    await self.process(entries)
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a shard, the model or the broker is away: retry the same
                self.failures += 1
                log.warning("partition %d: %s; retrying", self.partition, type(e).__name__)
                pending = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def process(self, entries: list[Entry]) -> None:
        """Runs of transactions and labels, in stream order; then results; then ack."""
        results: list[dict[str, Any]] = []
        for kind, run in groupby(entries, key=lambda e: e.kind):
            group = list(run)
            if kind == TX:
                results.extend(await self._transactions(group))
            elif kind == LABEL:
                results.extend(await self._labels(group))
            else:
                results.extend(_invalid(e.id, e.body, f"unknown kind {kind!r}") for e in group)
        await self.source.write_results(self.partition, results)
        await self.source.ack(self.partition, [e.id for e in entries])

    async def _transactions(self, entries: list[Entry]) -> list[dict[str, Any]]:
        valid: list[tuple[Entry, TransactionIn]] = []
        out: list[dict[str, Any]] = []
        for e in entries:
            try:
                valid.append((e, TransactionIn.model_validate_json(e.body)))
            except ValidationError as err:
                self.invalid += 1
                out.append(_invalid(e.id, e.body, err))
        if valid:
            answers = await self.score_items([t for _, t in valid])
            for (e, t), a in zip(valid, answers, strict=True):
                if a is None:
                    body = {"transaction_id": t.transaction_id, "decision": "CONFLICT",
                            "score": 0.0, "model_version": ""}  # fmt: skip
                    out.append(result_fields(e.id, body))
                else:
                    answer = {k: v for k, v in a.__dict__.items() if v is not None}
                    out.append(result_fields(e.id, answer))
            self.transactions += len(valid)
        return out

    async def _labels(self, entries: list[Entry]) -> list[dict[str, Any]]:
        labels: list[LabelIn] = []
        out: list[dict[str, Any]] = []
        for e in entries:
            try:
                labels.append(LabelIn.model_validate_json(e.body))
            except ValidationError as err:
                self.invalid += 1
                out.append(_invalid(e.id, e.body, err))
        if labels:
            await self.feedback(labels)
            self.labels += len(labels)
        return out

    def stats(self) -> dict[str, int]:
        return {
            "partition": self.partition,
            "transactions": self.transactions,
            "labels": self.labels,
            "invalid": self.invalid,
            "failures": self.failures,
            "reclaimed": self.reclaimed,
        }
