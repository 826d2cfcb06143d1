"""The stream path on Apache Kafka: one consumer in the group and one transactional producer
per StreamConsumer replica, exactly once end to end.

A batch is consumed, decided (`BatchDecider`, the same as the Redis path), and its
decisions, its dead letters and the consumed offsets go in one Kafka transaction
(`send_offsets_to_transaction` with the consumer's group metadata, KIP-447). A crash before
the commit aborts that transaction: a `read_committed` reader never sees its decisions, the
offsets stay where they were, and the batch is read again, by this replica or by the one the
group gives its partitions to. The state changes it had made are not made twice: the shards
answer a transaction they have applied from their dedup index.

Message format: the value is an entry's body (one transaction or label as JSON, or an array
of them); the `kind` header says which (`tx`, `txs`, `label`, `labels`); without it, an
object is a transaction and an array a list of them, so a gateway's plain JSON producer
works. Decisions: one message per answer, keyed by transaction id, with headers `src`
(`<topic>:<partition>:<offset>` of the input) and `src_ts` (the input's timestamp, ms).
confluent-kafka blocks, so every call runs in a worker thread, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from deployments.stream.contract import TX, TXS, DeadLetter, Entry, KafkaConfig, StreamConfig
from deployments.stream.worker import BatchDecider

log = logging.getLogger(__name__)
CALL_TIMEOUT_S = 30.0  # a blocking client call that is not a batch's commit
Headers = list[tuple[str, str | bytes | None]]


def client_settings(config: KafkaConfig) -> dict[str, Any]:
    """What every client gets: the brokers, the operator's librdkafka properties (TLS,
    SASL) and the password from the environment."""
    settings: dict[str, Any] = {
        "bootstrap.servers": config.bootstrap_servers,
        "logger": log,  # librdkafka's messages into the replica's log, not stderr
        **config.client,
    }
    password = os.environ.get(config.password_env)
    if password:
        settings["sasl.password"] = password
    return settings


def ensure_topics(config: KafkaConfig) -> None:
    """Create the input, decisions and dead-letter topics when absent."""
    admin = AdminClient(client_settings(config))
    names = (config.input_topic, config.decisions_topic, config.dead_letter_topic)
    futures = admin.create_topics(
        [NewTopic(t, config.partitions, config.replication_factor) for t in names],
        operation_timeout=30,
    )
    for name, future in futures.items():
        try:
            future.result(timeout=60)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise RuntimeError(f"cannot create Kafka topic {name}: {e.args[0].str()}") from e


def entry_of(message: Message) -> Entry:
    """A message as the stream path's entry: its id is `<partition>:<offset>`."""
    value = message.value() or b""
    kind = ""
    headers = message.headers() or []
    for key, raw in headers.items() if isinstance(headers, dict) else headers:
        if key == "kind" and isinstance(raw, bytes):
            kind = raw.decode(errors="replace")
    if not kind and value:
        kind = TXS if value.lstrip()[:1] == b"[" else TX
    return Entry(f"{message.partition()}:{message.offset()}", kind, value)


@dataclass(frozen=True)
class Batch:
    """Consumed messages with what their transaction needs: where each came from and the
    offsets to commit (the next to read) and to rewind to (the first read) per partition."""

    messages: list[Message]
    entries: list[Entry]
    commit: list[TopicPartition]
    rewind: list[TopicPartition]


def batch_of(messages: Sequence[Message]) -> Batch:
    first: dict[tuple[str, int], int] = {}
    last: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic() or "", m.partition() or 0)
        first.setdefault(key, m.offset() or 0)
        last[key] = m.offset() or 0
    return Batch(
        list(messages),
        [entry_of(m) for m in messages],
        [TopicPartition(t, p, o + 1) for (t, p), o in last.items()],
        [TopicPartition(t, p, o) for (t, p), o in first.items()],
    )


@dataclass
class Inflight:
    """A batch whose transaction is being committed (in a worker thread)."""

    commit: asyncio.Future[None]
    batch: Batch
    dead_letters: int


class KafkaWorker:
    """One replica's consumer loop. The group assigns partitions (and moves them when
    replicas come and go); each batch is committed in one transaction or not at all."""

    def __init__(self, config: StreamConfig, decider: BatchDecider, member: str) -> None:
        self.config, self.kafka, self.decider, self.member = config, config.kafka, decider, member
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self.batches = self.aborted = self.failures = self.dead_letters = self.errors = 0
        self.abandoned = 0  # clients left blocked in a commit past commit_timeout_ms
        # Each blocking call of a commit gets a third of the budget; the watchdog the rest.
        self.call_timeout_s = config.kafka.commit_timeout_ms / 3000
        self.busy_s = self.commit_s = 0.0  # deciding and committing; of it, committing
        self.lag: dict[int, int] = {}  # partition -> messages behind (librdkafka's statistics)
        self.assigned: list[int] = []
        self.started_at: dict[int, int] = {}  # partition -> committed offset when assigned
        self.position: dict[int, int] = {}  # partition -> the next offset to read
        self.idle = threading.Event()  # no commit in flight
        self.idle.set()

    # -- clients ---------------------------------------------------------------------
    def _connect(self) -> None:
        """(Re)create the consumer and the transactional producer; the producer's
        init_transactions fences a predecessor with the same transactional id."""
        self._close_clients()
        if self.kafka.create_topics:
            ensure_topics(self.kafka)
        common = client_settings(self.kafka)
        self.producer = Producer(
            {
                **common,
                "transactional.id": f"{self.kafka.transactional_id}-{self.member}",
                "transaction.timeout.ms": self.kafka.transaction_timeout_ms,
                "linger.ms": 2,
            }
        )
        self.producer.init_transactions(CALL_TIMEOUT_S)
        self.consumer = Consumer(
            {
                **common,
                "group.id": self.kafka.group,
                "group.instance.id": f"fraud-{self.member}",
                "session.timeout.ms": self.kafka.session_timeout_ms,
                "client.id": f"fraud-{self.member}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "statistics.interval.ms": 1000,
                "stats_cb": self._on_statistics,
            }
        )
        self.consumer.subscribe(
            [self.kafka.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    def _close_clients(self) -> None:
        if self.consumer is not None:
            with contextlib.suppress(KafkaException, RuntimeError):
                self.consumer.close()
            self.consumer = None
        if self.producer is not None:
            self.producer.flush(5)
            self.producer = None

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=CALL_TIMEOUT_S)
        self.assigned = sorted(tp.partition for tp in partitions)
        self.started_at = {tp.partition: tp.offset for tp in committed}
        log.info("kafka %s: assigned partitions %s", self.member, self.assigned)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Before the partitions go, the commit in flight (which holds their offsets) ends."""
        self.idle.wait(self.kafka.commit_timeout_ms / 1000)
        gone = {tp.partition for tp in partitions}
        self.assigned = [p for p in self.assigned if p not in gone]
        for p in gone:
            self.lag.pop(p, None)

    def _on_statistics(self, raw: str) -> None:
        """librdkafka's statistics (JSON it writes itself): each assigned partition's lag."""
        stats = orjson.loads(raw)
        topic = stats.get("topics", {}).get(self.kafka.input_topic, {})
        lag = {}
        for key, part in topic.get("partitions", {}).items():
            p = int(key)
            if p >= 0 and p in self.assigned and part.get("consumer_lag", -1) >= 0:
                lag[p] = int(part["consumer_lag"])
        self.lag = lag

    # -- the loop --------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Batch after batch; a batch's commit overlaps the next batch's read and decide (a
        pipeline two deep, so the commit's round trips to the coordinator are not dead
        time). A failed commit sends both batches back to be read again."""
        delay = 0.1
        inflight: Inflight | None = None
        while not stop.is_set():
            try:
                if self.consumer is None:
                    await asyncio.to_thread(self._connect)
                batch = await asyncio.to_thread(self._poll)
                if batch is None:
                    previous, inflight = inflight, None
                    await self._settle(previous, None)
                    continue
                t0 = time.perf_counter()
                try:
                    answers, dead = await self.decider.decide(batch.entries)
                except Exception:
                    previous, inflight = inflight, None
                    await self._settle(previous, batch, failed=True)
                    raise
                previous, inflight = inflight, None
                await self._settle(previous, batch)
                commit = asyncio.ensure_future(self._commit_within(batch, answers, dead))
                inflight = Inflight(commit, batch, len(dead))
                self.busy_s += time.perf_counter() - t0
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a shard, the model or the broker is away: read again
                previous, inflight = inflight, None
                with contextlib.suppress(Exception):  # a commit still out: its outcome
                    await self._settle(previous, None)
                self.failures += 1
                log.warning("kafka %s: %s: %s; retrying", self.member, type(e).__name__, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        with contextlib.suppress(Exception):
            await self._settle(inflight, None)
        await asyncio.to_thread(self._close_clients)

    async def _settle(
        self, inflight: Inflight | None, following: Batch | None, failed: bool = False
    ) -> None:
        """Wait for the batch in flight to commit. A batch that did not commit is read
        again, and so is the one after it (`following`, decided, not committed), which is
        also read again when it `failed` itself. Raises what the commit raised."""
        error: Exception | None = None
        if inflight is not None:
            t1 = time.perf_counter()
            try:
                await inflight.commit
                self.batches += 1
                self.dead_letters += inflight.dead_letters
            except Exception as e:
                error = e
            self.commit_s += time.perf_counter() - t1
        if following is not None and (failed or error is not None):
            await asyncio.to_thread(self._rewind, following)
        if error is not None and inflight is not None:
            await asyncio.to_thread(self._rewind, inflight.batch)  # the earlier offsets last
            raise error

    async def _commit_within(
        self, batch: Batch, answers: list[list[dict[str, Any]]], dead: list[DeadLetter]
    ) -> None:
        """Commit, or give up on both clients after `commit_timeout_ms`.

        librdkafka's send_offsets_to_transaction can block past its own timeout when the
        group coordinator goes away (confluentinc/librdkafka#5456, #5511, open). The blocked
        call cannot be interrupted: its thread and clients are left behind, and new ones
        take over. That is safe: the new producer's init_transactions (same transactional
        id) fences the old one and aborts its transaction, the new consumer (same static
        member id) replaces the old member, and the batch is read again from the committed
        offsets."""
        assert self.producer is not None and self.consumer is not None
        clients = (self.producer, self.consumer)
        self.idle.clear()
        work = asyncio.ensure_future(
            asyncio.to_thread(self._commit, *clients, batch, answers, dead)
        )
        work.add_done_callback(lambda _: self.idle.set())
        done, _ = await asyncio.wait({work}, timeout=self.kafka.commit_timeout_ms / 1000)
        if work in done:
            work.result()
            return
        self.abandoned += 1
        work.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved, if ever
        self.consumer = self.producer = None  # not closed: they are in use by that thread
        self.idle.set()  # no commit of the new clients is in flight
        raise TimeoutError(f"commit blocked past {self.kafka.commit_timeout_ms} ms")

    def _poll(self) -> Batch | None:
        consumer = self.consumer  # a commit's watchdog may drop it meanwhile
        assert consumer is not None
        messages = consumer.consume(self.config.read_count, self.config.block_ms / 1000)
        good = []
        for m in messages:
            error = m.error()
            if error is None:
                good.append(m)
            elif error.fatal():
                raise KafkaException(error)
            else:  # transport errors while a broker is away: librdkafka retries by itself
                self.errors += 1
        if not good:
            return None
        batch = batch_of(good)
        self.position.update((tp.partition, tp.offset) for tp in batch.commit)
        return batch

    def _commit(
        self,
        producer: Producer,
        consumer: Consumer,
        batch: Batch,
        answers: list[list[dict[str, Any]]],
        dead: list[DeadLetter],
    ) -> None:
        """Decisions, dead letters and offsets in one transaction, on the clients it is
        given (if it outlives the watchdog, newer ones are the worker's by then)."""
        producer.begin_transaction()
        try:
            for m, entry, items in zip(batch.messages, batch.entries, answers, strict=True):
                src = f"{m.topic()}:{entry.id}"
                headers: Headers = [
                    ("src", src.encode()),
                    ("src_ts", str(m.timestamp()[1]).encode()),
                ]
                for a in items:
                    self._produce(
                        producer,
                        self.kafka.decisions_topic,
                        str(a.get("transaction_id", "")).encode(),
                        orjson.dumps(a),
                        headers,
                    )
            for d in dead:
                letter = {"src": f"{self.kafka.input_topic}:{d.entry.id}",
                          "kind": d.entry.kind[:64], "bytes": len(d.entry.body),
                          "reason": d.reason}  # fmt: skip
                self._produce(
                    producer, self.kafka.dead_letter_topic, None, orjson.dumps(letter), []
                )
            producer.send_offsets_to_transaction(
                batch.commit, consumer.consumer_group_metadata(), self.call_timeout_s
            )
            self._finish(producer)
        except Exception as e:
            # Fatal: fenced by a newer replica with our transactional id, or the producer is
            # unusable. Otherwise abort; if even that fails, start both clients afresh (a new
            # producer's init_transactions aborts what is left open).
            fatal = isinstance(e, KafkaException) and e.args[0].fatal()
            if not fatal:
                try:
                    producer.abort_transaction(self.call_timeout_s)
                    self.aborted += 1
                except KafkaException:
                    fatal = True
            if fatal and self.producer is producer:
                self._close_clients()
            raise

    @staticmethod
    def _produce(
        producer: Producer, topic: str, key: bytes | None, value: bytes, headers: Headers
    ) -> None:
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers)
                return
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.05)

    def _finish(self, producer: Producer) -> None:
        """Commit, retrying what the client says is retriable (a broker restarting)."""
        deadline = time.monotonic() + self.call_timeout_s
        while True:
            try:
                producer.commit_transaction(self.call_timeout_s)
                return
            except KafkaException as e:
                if not e.args[0].retriable() or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _rewind(self, batch: Batch) -> None:
        """Read the batch again: back to its first offsets, on the partitions still ours (a
        partition moved meanwhile is read from its committed offset by its new owner)."""
        if self.consumer is None:
            return
        for tp in batch.rewind:
            if tp.partition in self.assigned:
                try:
                    self.consumer.seek(tp)
                except KafkaException:  # start afresh: read from the committed offsets
                    self._close_clients()
                    return

    def stats(self) -> dict[str, Any]:
        return {
            "member": self.member,
            "assigned": list(self.assigned),
            "started_at": dict(self.started_at),
            "position": dict(self.position),
            "lag": sum(self.lag.values()),
            "lag_by_partition": dict(self.lag),
            **self.decider.stats(),
            "dead_letters": self.dead_letters,
            "batches": self.batches,
            "aborted": self.aborted,
            "abandoned": self.abandoned,
            "failures": self.failures,
            "client_errors": self.errors,
            "busy_s": round(self.busy_s, 3),
            "commit_s": round(self.commit_s, 3),
        }
