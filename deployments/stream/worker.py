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
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from deployments.http.schemas import LabelIn, TransactionIn, error_field
from deployments.scoring.pipeline import Answer
from deployments.stream.contract import (
    LABEL,
    LABELS,
    TX,
    TXS,
    DeadLetter,
    Entry,
    StreamConfig,
    StreamSource,
    result_fields,
)
from features.currency import CurrencyConfig
from features.ids import holds_pan

log = logging.getLogger(__name__)
# A whole entry in one validation call: the same models, one Rust loop instead of a Python one.
_LISTS: dict[type[BaseModel], TypeAdapter[list[Any]]] = {
    TransactionIn: TypeAdapter(list[TransactionIn]),
    LabelIn: TypeAdapter(list[LabelIn]),
}
ScoreItems = Callable[[Sequence[TransactionIn]], Awaitable[list[Answer | None]]]
Feedback = Callable[[Sequence[LabelIn]], Awaitable[list[str]]]


def _invalid(item: object, error: ValidationError | str) -> dict[str, Any]:
    """The answer for an item that failed validation (fields named, the input not echoed)."""
    if isinstance(error, ValidationError):
        fields = sorted({error_field(e) for e in error.errors()})
        message = f"invalid {', '.join(fields)}"
    else:
        message = error
    tx_id = item.get("transaction_id", "") if isinstance(item, dict) else ""
    # The id only if it is a plausible one and no card number (answers are also in input
    # order to match on).
    tx_id = "redacted" if holds_pan(str(tx_id)) else str(tx_id)[:64]
    return {"transaction_id": tx_id, "decision": "INVALID", "error": message}


def _items(entry: Entry, max_bytes: int) -> list[object] | str:
    """The items an entry carries, or why it carries none."""
    if not entry.kind:
        return "entry has no kind field"
    if len(entry.body) > max_bytes:
        return f"body over {max_bytes:,} bytes"
    try:
        body = orjson.loads(entry.body)
    except orjson.JSONDecodeError:
        return "body is not JSON"
    if entry.kind in (TX, LABEL):
        return [body]
    if entry.kind in (TXS, LABELS):
        return body if isinstance(body, list) else f"{entry.kind}: body must be a JSON array"
    return f"unknown kind {entry.kind[:32]!r}"


class BatchDecider:
    """Decides a batch of entries, whatever the broker: the answers of each entry in input
    order (invalid items answered naming their fields) and the entries that carry nothing
    to decide. Both loops (Redis Streams per partition, Kafka per consumer) call it."""

    def __init__(
        self,
        score_items: ScoreItems,
        feedback: Feedback,
        config: StreamConfig,
        currency: CurrencyConfig | None = None,
    ) -> None:
        self.score_items, self.feedback, self.config = score_items, feedback, config
        self.currency = currency or CurrencyConfig()
        self.transactions = self.labels = self.invalid = 0

    async def decide(
        self, entries: Sequence[Entry]
    ) -> tuple[list[list[dict[str, Any]]], list[DeadLetter]]:
        """Labels first, then every transaction of the batch in one pipeline call.

        Taking a batch's labels first changes no feature: a label counts only for
        transactions at least the label delay younger than the one it labels, and those come
        after it in event time (the HTTP replay relies on the same rule, docs/architecture.md).
        One pipeline call per batch, not one per run between labels, is what makes this fast.
        """
        answers: list[list[dict[str, Any]]] = [[] for _ in entries]
        txs: list[TransactionIn] = []
        spans: list[tuple[int, int, int, int]] = []  # entry, position in it, start in txs, count
        labels: list[LabelIn] = []
        dead: list[DeadLetter] = []
        for k, e in enumerate(entries):
            items = _items(e, self.config.max_entry_bytes)
            if isinstance(items, str):
                answers[k].append(_invalid(None, items))
                dead.append(DeadLetter(e, items))
                self.invalid += 1
            elif e.kind in (TX, TXS):
                for pos, valid in self._valid(items, TransactionIn, answers[k], answered=True):
                    spans.append((k, pos, len(txs), len(valid)))
                    txs.extend(valid)
            else:
                for _, valid in self._valid(items, LabelIn, answers[k], answered=False):
                    labels.extend(valid)
        if labels:
            await self.feedback(labels)
            self.labels += len(labels)
        if txs:
            scored = await self.score_items(txs)
            for k, pos, start, count in spans:
                part = slice(start, start + count)
                answers[k][pos : pos + count] = [
                    a.as_dict()
                    if a is not None
                    else {"transaction_id": t.transaction_id, "decision": "CONFLICT"}
                    for t, a in zip(txs[part], scored[part], strict=True)
                ]
            self.transactions += len(txs)
        return answers, dead

    def _valid(
        self,
        items: list[object],
        model: type[BaseModel],
        out: list[dict[str, Any]],
        answered: bool,
    ) -> list[tuple[int, list[Any]]]:
        """Runs of valid items as (position among the entry's answers, models). A whole
        entry is validated in one call; only an entry that fails is gone through item by
        item, each invalid item answered in `out` naming its fields (transactions get a
        placeholder there, filled once scored)."""
        try:
            valid = _LISTS[model].validate_python(items)
        except ValidationError:
            pass
        else:
            if not any(map(self._refused, valid)):
                if answered:
                    out.extend([{}] * len(valid))
                return [(0, valid)]
        runs = []
        for item in items:
            try:
                one = model.model_validate(item)
            except ValidationError as err:
                out.append(_invalid(item, err))
                self.invalid += 1
                continue
            if refused := self._refused(one):
                out.append(_invalid(item, refused))
                self.invalid += 1
                continue
            runs.append((len(out), [one]))
            if answered:
                out.append({})
        return runs

    def _refused(self, item: BaseModel) -> str | None:
        """Why a valid transaction's amount cannot be taken (its currency), or None."""
        if not isinstance(item, TransactionIn):
            return None
        problem = self.currency.problem(item.currency, item.amount)
        return None if problem is None else f"invalid {problem.field}: {problem.message}"

    def stats(self) -> dict[str, int]:
        return {"transactions": self.transactions, "labels": self.labels, "invalid": self.invalid}


class PartitionWorker:
    """One Redis Streams partition's loop: read, decide, write decisions, ack."""

    def __init__(self, partition: int, source: StreamSource, decider: BatchDecider) -> None:
        self.partition, self.source, self.decider = partition, source, decider
        self.config = decider.config
        self.failures = self.reclaimed = self.batches = self.dead_letters = 0
        self.busy_s = 0.0  # time spent processing (the rest is waiting for entries)

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
                    t0 = time.perf_counter()
                    await self.process(entries)
                    self.batches += 1
                    self.busy_s += time.perf_counter() - t0
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
        """Decide the batch; then one result entry per input entry, the dead letters, ack."""
        answers, dead = await self.decider.decide(entries)
        results = [
            result_fields(e.id, a, single=e.kind == TX)
            for e, a in zip(entries, answers, strict=True)
            if a
        ]
        await self.source.write_results(self.partition, results)
        await self.source.dead_letter(self.partition, dead)
        await self.source.ack(self.partition, [e.id for e in entries])
        self.dead_letters += len(dead)

    def stats(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            **self.decider.stats(),
            "dead_letters": self.dead_letters,
            "failures": self.failures,
            "reclaimed": self.reclaimed,
            "batches": self.batches,
            "busy_s": round(self.busy_s, 3),
        }
