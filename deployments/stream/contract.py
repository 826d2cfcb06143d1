"""The stream path: its wire format, its configuration and the small interface the Redis
Streams adapter implements (`deployments.stream.redis.RedisStreams`). The Kafka path
(`deployments.stream.kafka`) reads the same entries from a topic: a message's value is an
entry's body, its `kind` header the entry's kind (docs/api.md, "Stream path").

Producers append entries to partition `p` of the input (`<input_prefix>:<p>`), choosing
`p` from the card id so that a card's transactions stay in order. An entry has two fields:
`kind` and `body`. `tx` / `label`: the JSON the HTTP API takes for one transaction / one
label; `txs` / `labels`: a JSON array of them (packing many per entry saves a broker round
trip per transaction, as Kafka producers batch). Each input entry gets one entry in
`<results_prefix>:<p>` with `src` (the input entry id), `count` and `body`: a JSON array of
answers in input order (an invalid item: `{"transaction_id", "decision": "INVALID",
"error"}` naming its fields). A single `tx` entry's result also carries `transaction_id`,
`decision`, `score` and `model_version` as fields, for consumers that read no JSON.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson
from pydantic import BaseModel, ConfigDict, Field

TX, TXS, LABEL, LABELS = "tx", "txs", "label", "labels"


class KafkaConfig(BaseModel):
    """`stream.kafka:` the Kafka path's broker, topics and client settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    input_topic: str = Field(
        "fraud.transactions",
        description="Transactions and labels, partitioned by card (a card on one partition).",
    )
    decisions_topic: str = Field(
        "fraud.decisions", description="One message per answer, keyed by transaction id."
    )
    dead_letter_topic: str = Field(
        "fraud.dead", description="Messages that carry nothing to decide, with the reason."
    )
    group: str = "fraud-scorers"
    transactional_id: str = Field(
        "fraud-scorer",
        description="Prefix of each consumer's transactional id (<prefix>-<replica rank>): a "
        "restarted replica fences its predecessor's unfinished transaction.",
    )
    partitions: int = Field(
        4, ge=1, le=10_000, description="For the topics the service creates when absent."
    )
    replication_factor: int = Field(1, ge=1, le=16)
    create_topics: bool = True
    transaction_timeout_ms: int = Field(60_000, ge=1_000, le=900_000)
    commit_timeout_ms: int = Field(
        30_000,
        ge=1_000,
        le=300_000,
        description="The longest a batch's transaction may take to commit; past it the "
        "consumer and producer are replaced and the batch is read again.",
    )
    session_timeout_ms: int = Field(
        10_000,
        ge=1_000,
        le=300_000,
        description="A replica silent this long loses its partitions to the others. Each "
        "replica is a static member (group.instance.id: its rank), so a restarted replica "
        "takes its partitions back at once, without a rebalance.",
    )
    client: dict[str, str] = Field(
        default_factory=dict,
        description="More librdkafka properties for every client: security.protocol, "
        "ssl.ca.location, sasl.mechanism, sasl.username... (the password comes from the "
        "environment variable named by password_env, never from this file).",
    )
    password_env: str = Field(
        "FRAUD_KAFKA_PASSWORD", description="When set, its value is sasl.password."
    )


class StreamConfig(BaseModel):
    """`stream:` in serve_config.yaml (off unless enabled). `broker` chooses the path; the
    Redis settings are the top-level ones, Kafka's are under `kafka:`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    broker: Literal["redis", "kafka"] = "redis"
    kafka: KafkaConfig = KafkaConfig()
    redis_url: str = "redis://127.0.0.1:6379/0"
    input_prefix: str = "fraud:tx"
    results_prefix: str = "fraud:decisions"
    group: str = "fraud-scorers"
    partitions: int = Field(4, ge=1, le=1024)
    consumers: int = Field(
        2,
        ge=1,
        le=1024,
        description="StreamConsumer replicas; each owns the partitions p with p % consumers "
        "== its rank. One replica is one Python process: with one, the stream path used "
        "~1.2 of 2 cores, the consumer's own core full.",
    )
    read_count: int = Field(
        64,
        ge=1,
        le=10_000,
        description="Entries per read (a packed entry holds many); Kafka: messages per batch.",
    )
    block_ms: int = Field(200, ge=1, le=10_000, description="Longest wait for new entries.")
    reclaim_idle_ms: int = Field(10_000, ge=100, description="Pending this long: reclaimed.")
    results_maxlen: int = Field(2_000_000, ge=1_000, description="Per partition, approximate.")
    dead_letter_prefix: str = Field(
        "fraud:dead", description="Entries that cannot be read go to <prefix>:<p>, with why."
    )
    max_entry_bytes: int = Field(
        8 * 1024 * 1024, ge=1_024, description="A larger entry body is refused (dead letter)."
    )


@dataclass(frozen=True)
class Entry:
    id: str
    kind: str  # "" when the entry has no readable `kind` field
    body: bytes


@dataclass(frozen=True)
class DeadLetter:
    """An entry that carries nothing to decide (no kind, not JSON, too large...), and why.
    It is answered INVALID, recorded here, and acknowledged, so its partition goes on."""

    entry: Entry
    reason: str


class StreamSource(Protocol):
    async def read(self, partition: int, count: int, block_ms: int, pending: bool) -> list[Entry]:
        """New entries for this consumer, or (`pending`) the ones it read and did not ack."""
        ...

    async def reclaim(self, partition: int, min_idle_ms: int) -> int:
        """Take over entries another (dead) consumer read and never acknowledged."""
        ...

    async def write_results(self, partition: int, results: list[dict[str, Any]]) -> None: ...

    async def ack(self, partition: int, ids: list[str]) -> None: ...

    async def dead_letter(self, partition: int, letters: list[DeadLetter]) -> None:
        """Record unreadable entries (their id, kind, size and reason; not their body, which
        may hold card numbers and stays in the input stream) before they are acknowledged."""
        ...

    async def close(self) -> None: ...


class StreamLoop(Protocol):
    """One consumer loop of a StreamConsumer replica (a Redis partition, a Kafka member)."""

    async def run(self, stop: asyncio.Event) -> None: ...

    def stats(self) -> dict[str, Any]: ...


def result_fields(src: str, answers: list[dict[str, Any]], single: bool) -> dict[str, Any]:
    """One input entry's answers as stream fields."""
    fields: dict[str, Any] = {"src": src, "count": len(answers), "body": orjson.dumps(answers)}
    if single and answers:
        a = answers[0]
        fields.update(
            transaction_id=a.get("transaction_id", ""),
            decision=a["decision"],
            score=repr(a.get("score", "")),
            model_version=a.get("model_version", ""),
        )
    return fields
