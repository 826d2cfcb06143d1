"""`fraud replay --sink redis-stream`: append a transaction file (and its labels, when they
become known) to the service's input streams, then collect its decisions from the results
streams and report as the HTTP replay does.

Speaks only the stream wire format (docs/api.md, "Stream path"); imports nothing of the
service. A card always goes to the same partition, so its transactions stay in order.
End-to-end latency per transaction is the difference of the Redis-assigned ids (ms) of
its input entry and of its decision.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import orjson
import pandas as pd
import redis

from features.ids import id_buckets
from features.offline import feedback_from_labels
from features.spec import MS_PER_DAY
from features.transactions import sort_by_event_time
from simulator.replay import ReplayResult, tx_bodies

Progress = Callable[[int, int, dict[str, int]], None]


@dataclass(frozen=True)
class StreamReplayOptions:
    redis_url: str = "redis://127.0.0.1:6379/0"
    input_prefix: str = "fraud:tx"
    results_prefix: str = "fraud:decisions"
    partitions: int = 4
    labels: bool = True
    label_delay_days: float = 7.0
    chunk: int = 2_000  # events per pipelined round trip
    entry_size: int = 100  # transactions (or labels) packed per stream entry; 1: one each
    wait_seconds: float = 120.0  # for the last decisions, after the last entry went in
    max_seconds: float | None = None  # stop producing after this long
    rate: float | None = None  # transactions per second to append at; None: as fast as possible


def partitions_of(users: pd.Series, partitions: int) -> np.ndarray:
    codes, uniques = pd.factorize(users.astype(str))
    return id_buckets(list(uniques), partitions)[codes]


def _ms(entry_id: bytes | str) -> int:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(raw.split("-")[0])


def label_events(df: pd.DataFrame, labels: bool, label_delay_days: float) -> pd.DataFrame:
    """Transactions (kind 1) and, with `labels`, fraud labels once known (kind 0), in one
    event-time order (labels first on ties); `row` is the transaction's row in `df`."""
    tx = pd.DataFrame({"t": df["timestamp"], "kind": 1, "row": np.arange(len(df))})
    if not labels:
        return tx
    known = feedback_from_labels(df, int(label_delay_days * MS_PER_DAY))
    row_of = pd.Series(np.arange(len(df)), index=df["transaction_id"].astype(str))
    rows = row_of.reindex(known["transaction_id"].astype(str)).to_numpy()
    lb = pd.DataFrame({"t": known["timestamp"].to_numpy(), "kind": 0, "row": rows})
    both = pd.concat([tx, lb], ignore_index=True)
    return both.sort_values(["t", "kind"], kind="stable").reset_index(drop=True)


def runs_of(kinds: np.ndarray, rows: np.ndarray, size: int) -> Iterator[tuple[int, np.ndarray]]:
    """Consecutive events of one kind, at most `size` at a time, in order."""
    start = 0
    while start < len(kinds):
        end = start + 1
        while end < len(kinds) and kinds[end] == kinds[start] and end - start < size:
            end += 1
        yield int(kinds[start]), rows[start:end]
        start = end


@dataclass(frozen=True)
class Events:
    """A replay's events in order, with what an entry is made of: each transaction's API
    body, id, terminal and partition (its card's)."""

    kinds: np.ndarray  # 1: a transaction, 0: its fraud label
    rows: np.ndarray
    bodies: list[dict[str, Any]]
    tx_ids: list[str]
    partitions: np.ndarray
    n_partitions: int

    @classmethod
    def of(cls, df: pd.DataFrame, labels: bool, delay_days: float, partitions: int) -> Events:
        events = label_events(df, labels, delay_days)
        bodies = tx_bodies(df)
        return cls(
            events["kind"].to_numpy(), events["row"].to_numpy(), bodies,
            [b["transaction_id"] for b in bodies], partitions_of(df["user_id"], partitions),
            partitions,
        )  # fmt: skip


def entries_of(
    events: Events, chunk: slice, size: int, sent: set[str], result: ReplayResult
) -> Iterator[tuple[int, str, bytes]]:
    """The entries (partition, kind, body) of a chunk of events: per partition, consecutive
    events of one kind packed `size` to an entry. Counts what is sent."""
    kinds, rows = events.kinds[chunk], events.rows[chunk]
    for p in range(events.n_partitions):
        mine = events.partitions[rows] == p
        for kind, group in runs_of(kinds[mine], rows[mine], size):
            if kind == 1:
                payload = [events.bodies[row] for row in group]
                sent.update(events.tx_ids[row] for row in group)
            else:
                payload = [
                    {"transaction_id": events.tx_ids[row],
                     "terminal_id": events.bodies[row]["terminal_id"], "is_fraud": True}
                    for row in group
                ]  # fmt: skip
                result.labels_sent += len(group)
            single = len(payload) == 1
            name = ("tx" if kind == 1 else "label") + ("" if single else "s")
            yield p, name, orjson.dumps(payload[0] if single else payload)


Answered = tuple[float, str, str, float]  # score, decision, model version, latency (ms)


def _collect(
    r: redis.Redis,
    cursors: dict[str, bytes],
    sent: set[str],
    wait_seconds: float,
    result: ReplayResult,
) -> dict[str, Answered]:
    """Read decisions until every sent transaction has one (or `wait_seconds` pass): one
    answer per transaction id, the first; redeliveries are skipped. Only what the report
    needs is kept while reading: the rows are built once the clock has stopped."""
    answers: dict[str, Answered] = {}
    deadline = time.perf_counter() + wait_seconds
    while len(answers) < len(sent) and time.perf_counter() < deadline:
        reply: Any = r.xread(cursors, count=10_000, block=500)  # type: ignore[arg-type]
        for key, entries in reply or ():
            for entry_id, fields in entries:
                cursors[key.decode() if isinstance(key, bytes) else key] = entry_id
                latency = float(_ms(entry_id) - _ms(fields[b"src"]))
                for answer in orjson.loads(fields[b"body"]):
                    tx_id, decision = answer.get("transaction_id", ""), answer["decision"]
                    if tx_id in sent:
                        if tx_id in answers:  # a redelivery: one answer per id
                            continue
                        answers[tx_id] = (
                            answer.get("score", float("nan")), decision,
                            answer.get("model_version", ""), latency,
                        )  # fmt: skip
                    if decision == "INVALID":  # refused, naming the field: answered, not lost
                        result.errors["invalid"] = result.errors.get("invalid", 0) + 1
    return answers


def finish(
    result: ReplayResult,
    df: pd.DataFrame,
    tx_ids: list[str],
    sent: set[str],
    answers: dict[str, Answered],
) -> None:
    """The report's rows, one per answered transaction, and the count of those unanswered."""
    missing = len(sent) - len(answers)
    if missing:
        result.errors["no_decision"] = missing
    meta_cols = [c for c in ("transaction_id", "user_id", "is_fraud", "fraud_scenario") if c in df]
    records = cast("list[dict[str, Any]]", df[meta_cols].to_dict("records"))
    metas = dict(zip(tx_ids, records, strict=True))
    result.rows = [
        {**metas[tx_id], "score": score, "decision": decision, "model_version": version,
         "latency_ms": latency}
        for tx_id, (score, decision, version, latency) in answers.items()
        if decision != "INVALID"
    ]  # fmt: skip


def replay_to_stream(
    transactions: pd.DataFrame, opts: StreamReplayOptions, progress: Progress | None = None
) -> ReplayResult:
    df = sort_by_event_time(transactions)
    r = redis.Redis.from_url(opts.redis_url, socket_timeout=30)
    result = ReplayResult()
    results_keys = [f"{opts.results_prefix}:{p}" for p in range(opts.partitions)]
    # Decisions already in the results streams are from earlier runs: read after them.
    cursors: dict[str, bytes] = {}
    for key in results_keys:
        last: Any = r.xrevrange(key, count=1)
        cursors[key] = last[0][0] if last else b"0-0"

    events = Events.of(df, opts.labels, opts.label_delay_days, opts.partitions)
    sent: set[str] = set()
    started = time.perf_counter()  # from the first entry appended: the set-up is the client's
    for a in range(0, len(events.kinds), opts.chunk):
        if opts.max_seconds and time.perf_counter() - started > opts.max_seconds:
            result.stopped_early = True
            break
        pipe = r.pipeline(transaction=False)
        chunk = slice(a, a + opts.chunk)
        for p, name, entry in entries_of(events, chunk, opts.entry_size, sent, result):
            pipe.xadd(f"{opts.input_prefix}:{p}", {"kind": name, "body": entry})
        pipe.execute()
        if opts.rate:  # keep to the rate: latency below saturation, not behind a backlog
            ahead = started + len(sent) / opts.rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
        if progress:
            progress(min(a + opts.chunk, len(events.kinds)), len(events.kinds), {"sent": len(sent)})

    answers = _collect(r, cursors, sent, opts.wait_seconds, result)
    result.wall_seconds = time.perf_counter() - started  # the last decision read
    finish(result, df, events.tx_ids, sent, answers)
    r.close()
    return result
