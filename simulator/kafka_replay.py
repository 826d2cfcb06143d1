"""`fraud replay --sink kafka`: produce a transaction file (and its labels, when they become
known) to the service's input topic, then read its decisions and report as the HTTP replay
does.

Speaks only the Kafka wire format (docs/api.md, "Stream path"); imports nothing of the
service. Entries are the Redis path's (packed `txs`, a `kind` header), each to the
partition of its card, so a card's transactions stay in order. Decisions are read with
`read_committed` from the end of the decisions topic as it was when the replay started; a
decision seen twice (it cannot be, with the service's transactions) would count once and be
reported as `duplicate_decisions`. Latency per transaction: the decision message's
timestamp minus its input's (`src_ts` header), both set by producers on this machine.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import orjson
import pandas as pd
from confluent_kafka import Consumer, Producer, TopicPartition

from features.transactions import sort_by_event_time
from simulator.replay import ReplayResult
from simulator.stream_replay import Answered, Events, Progress, entries_of, finish


@dataclass(frozen=True)
class KafkaReplayOptions:
    bootstrap_servers: str = "127.0.0.1:9092"
    input_topic: str = "fraud.transactions"
    decisions_topic: str = "fraud.decisions"
    client: dict[str, str] = field(default_factory=dict)  # TLS / SASL, as the service's
    password_env: str = "FRAUD_KAFKA_PASSWORD"
    labels: bool = True
    label_delay_days: float = 7.0
    chunk: int = 2_000  # events per flush
    entry_size: int = 100  # transactions (or labels) per message; 1: one each
    wait_seconds: float = 120.0  # for the last decisions, after the last entry went in
    max_seconds: float | None = None
    rate: float | None = None  # transactions per second; None: as fast as possible


def _settings(opts: KafkaReplayOptions) -> dict[str, object]:
    settings: dict[str, object] = {"bootstrap.servers": opts.bootstrap_servers, **opts.client}
    password = os.environ.get(opts.password_env)
    if password:
        settings["sasl.password"] = password
    return settings


def _partitions(producer: Producer, topic: str) -> int:
    """The input topic's partition count: entries are spread over all of them."""
    meta = producer.list_topics(topic, timeout=30).topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        raise RuntimeError(f"Kafka topic {topic} is not there (the service creates it)")
    return len(meta.partitions)


def _decisions_reader(opts: KafkaReplayOptions) -> Consumer:
    """A read_committed reader of the decisions topic, from its current end."""
    settings = _settings(opts)
    reader = Consumer(
        {**settings, "group.id": f"fraud-replay-{os.getpid()}-{time.time_ns()}",
         "enable.auto.commit": False, "isolation.level": "read_committed"}
    )  # fmt: skip
    meta = reader.list_topics(opts.decisions_topic, timeout=30).topics.get(opts.decisions_topic)
    if meta is None or meta.error is not None:
        raise RuntimeError(f"Kafka topic {opts.decisions_topic} is not there")
    starts = []
    for p in meta.partitions:
        _, high = reader.get_watermark_offsets(TopicPartition(opts.decisions_topic, p), timeout=30)
        starts.append(TopicPartition(opts.decisions_topic, p, high))
    reader.assign(starts)
    return reader


def _collect(
    reader: Consumer, sent: set[str], wait_seconds: float, result: ReplayResult
) -> dict[str, Answered]:
    answers: dict[str, Answered] = {}
    deadline = time.perf_counter() + wait_seconds
    while len(answers) < len(sent) and time.perf_counter() < deadline:
        for m in reader.consume(10_000, 0.5):
            if m.error() is not None:
                continue
            answer = orjson.loads(m.value() or b"{}")
            tx_id, decision = answer.get("transaction_id", ""), answer.get("decision", "")
            if tx_id not in sent:
                continue
            if tx_id in answers:
                result.errors["duplicate_decisions"] = (
                    result.errors.get("duplicate_decisions", 0) + 1
                )
                continue
            src_ts = dict(m.headers() or []).get("src_ts")
            sent_ms = int(src_ts) if isinstance(src_ts, bytes) else m.timestamp()[1]
            latency = float(m.timestamp()[1] - sent_ms)
            answers[tx_id] = (
                answer.get("score", float("nan")), decision, answer.get("model_version", ""),
                latency,
            )  # fmt: skip
            if decision == "INVALID":
                result.errors["invalid"] = result.errors.get("invalid", 0) + 1
    return answers


def replay_to_kafka(
    transactions: pd.DataFrame, opts: KafkaReplayOptions, progress: Progress | None = None
) -> ReplayResult:
    df = sort_by_event_time(transactions)
    producer = Producer(
        {**_settings(opts), "enable.idempotence": True, "linger.ms": 5,
         "message.timeout.ms": 300_000}
    )  # fmt: skip
    partitions = _partitions(producer, opts.input_topic)
    reader = _decisions_reader(opts)
    result = ReplayResult()
    events = Events.of(df, opts.labels, opts.label_delay_days, partitions)
    sent: set[str] = set()
    failed: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failed.append(str(error))

    started = time.perf_counter()
    total = len(events.kinds)
    for a in range(0, total, opts.chunk):
        if opts.max_seconds and time.perf_counter() - started > opts.max_seconds:
            result.stopped_early = True
            break
        chunk = slice(a, a + opts.chunk)
        for p, name, entry in entries_of(events, chunk, opts.entry_size, sent, result):
            while True:
                try:
                    producer.produce(
                        opts.input_topic, entry, partition=p, headers=[("kind", name)],
                        on_delivery=delivered,
                    )  # fmt: skip
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
        if opts.rate:
            ahead = started + len(sent) / opts.rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
        if progress:
            progress(min(a + opts.chunk, total), total, {"sent": len(sent)})
    if producer.flush(opts.wait_seconds) > 0 or failed:
        result.errors["not_delivered"] = len(failed) or 1
    answers = _collect(reader, sent, opts.wait_seconds, result)
    result.wall_seconds = time.perf_counter() - started
    reader.close()
    finish(result, df, events.tx_ids, sent, answers)
    return result
