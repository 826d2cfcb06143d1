"""The Kafka stream path on a real broker (KRaft, the session's own): each transaction decided
once as a read_committed reader sees it, across a consumer group growing from 1 to 3
members, a poison message dead-lettered while its partition goes on, and a broker killed and
restarted under traffic. Here the consumers run in this process on in-process shards; the
Serve app's consumer, killed mid-stream, is `test_kafka_app`."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from actors.client.local import LocalShardClient
from cli.kafka import KafkaBroker
from deployments.scoring.pipeline import ScoringPipeline
from deployments.stream.contract import KafkaConfig, StreamConfig
from deployments.stream.kafka import KafkaWorker, ensure_topics
from deployments.stream.worker import BatchDecider
from policy.decision import Thresholds
from tests.code.test_pipeline import FakeModel

PARTITIONS = 6


def topics(broker: KafkaBroker, tag: str) -> KafkaConfig:
    config = KafkaConfig(
        bootstrap_servers=broker.bootstrap, input_topic=f"{tag}.tx",
        decisions_topic=f"{tag}.decisions", dead_letter_topic=f"{tag}.dead",
        group=f"{tag}-scorers", transactional_id=tag, partitions=PARTITIONS,
        session_timeout_ms=6_000, commit_timeout_ms=6_000,
    )  # fmt: skip
    ensure_topics(config)
    return config


def tx(i: int, tag: str) -> dict[str, Any]:
    return {
        "transaction_id": f"{tag}-{i}", "user_id": f"{tag}-card-{i % 60}", "terminal_id": "t1",
        "amount": 10.0 + i % 17, "timestamp": f"2018-06-01T{10 + i // 3600:02d}:"
        f"{i // 60 % 60:02d}:{i % 60:02d}",
    }  # fmt: skip


def card_partition(body: dict[str, Any]) -> int:
    return zlib.crc32(body["user_id"].encode()) % PARTITIONS


def produce(producer: Producer, config: KafkaConfig, bodies: list[dict[str, Any]]) -> None:
    """Each card's transactions to its partition, packed 10 to a message (`txs`), in order."""
    by_partition: dict[int, list[dict[str, Any]]] = {}
    for b in bodies:
        by_partition.setdefault(card_partition(b), []).append(b)
    for p, items in by_partition.items():
        for a in range(0, len(items), 10):
            value = orjson.dumps(items[a : a + 10])
            producer.produce(config.input_topic, value, partition=p, headers=[("kind", "txs")])
    producer.flush(60)


def read_all(config: KafkaConfig, topic: str, isolation: str = "read_committed") -> list[Any]:
    """Every message of a topic, from the start (values as JSON)."""
    reader = Consumer(
        {"bootstrap.servers": config.bootstrap_servers, "group.id": f"check-{uuid.uuid4()}",
         "enable.auto.commit": False, "isolation.level": isolation}
    )  # fmt: skip
    reader.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    out, quiet = [], 0
    while quiet < 3:
        batch = reader.consume(10_000, 0.5)
        quiet = 0 if batch else quiet + 1
        out += [orjson.loads(m.value()) for m in batch if m.error() is None]
    reader.close()
    return out


def decided_ids(config: KafkaConfig) -> Counter[str]:
    return Counter(a["transaction_id"] for a in read_all(config, config.decisions_topic))


class Members:
    """KafkaWorkers in one event loop on a thread of their own, sharing in-process shards
    (as Serve replicas share the shard actors)."""

    def __init__(self, config: KafkaConfig) -> None:
        self.stream = StreamConfig(enabled=True, broker="kafka", kafka=config, read_count=50)
        self.pipeline = ScoringPipeline(LocalShardClient(2, 1), FakeModel(), Thresholds())
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.workers: list[KafkaWorker] = []
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def add(self) -> KafkaWorker:
        decider = BatchDecider(self.pipeline.score_applied, self.pipeline.feedback, self.stream)
        worker = KafkaWorker(self.stream, decider, member=f"m{len(self.workers)}")
        self.workers.append(worker)
        asyncio.run_coroutine_threadsafe(worker.run(self.stop), self.loop)
        return worker

    def decided(self) -> int:
        return sum(w.decider.transactions for w in self.workers)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        time.sleep(1.5)  # each loop ends its consume call and closes its clients
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def members(request: pytest.FixtureRequest) -> Iterator[list[Members]]:
    made: list[Members] = []
    yield made
    for m in made:
        m.close()


def wait_for(what: str, check: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_group_of_one_grows_to_three_each_decided_once_poison_dead_lettered(
    kafka_broker: KafkaBroker, members: list[Members]
) -> None:
    tag = f"grow{uuid.uuid4().hex[:6]}"
    config = topics(kafka_broker, tag)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap, "linger.ms": 5})
    bodies = [tx(i, tag) for i in range(4_000)]
    produce(producer, config, bodies[:2_000])
    # Poison on partition 0, between good messages: not JSON, an unknown kind, nothing.
    for value, headers in ((b"{not json", [("kind", "tx")]), (b"[]", [("kind", "txz")]),
                           (b"", [])):  # fmt: skip
        producer.produce(config.input_topic, value, partition=0, headers=headers)
    producer.flush(30)
    group = Members(config)
    members.append(group)
    first = group.add()
    wait_for("the first member to decide", lambda: group.decided() >= 500, 60)
    second, third = group.add(), group.add()
    wait_for("three members with partitions", lambda: all(
        w.assigned for w in group.workers), 60)  # fmt: skip
    produce(producer, config, bodies[2_000:])
    wait_for("every decision", lambda: len(decided_ids(config)) >= len(bodies), 120)

    counts = decided_ids(config)
    assert set(counts) == {b["transaction_id"] for b in bodies} | {""}  # "": the poison's
    assert [k for k, n in counts.items() if n > 1 and k] == []  # none twice
    assignment = sorted(p for w in group.workers for p in w.assigned)
    assert assignment == list(range(PARTITIONS))  # the group spread them over all three
    assert second.batches > 0 and third.batches > 0 and first.batches > 0
    dead = read_all(config, config.dead_letter_topic)
    assert sorted(d["reason"] for d in dead) == [
        "body is not JSON", "entry has no kind field", "unknown kind 'txz'",
    ]  # fmt: skip
    assert all(d["src"].startswith(f"{config.input_topic}:0:") for d in dead)
    assert sum(w.dead_letters for w in group.workers) == 3


def test_broker_killed_and_restarted_under_traffic_loses_nothing(
    kafka_broker: KafkaBroker, members: list[Members]
) -> None:
    tag = f"restart{uuid.uuid4().hex[:6]}"
    config = topics(kafka_broker, tag)
    group = Members(config)
    members.append(group)
    worker = group.add()
    bodies = [tx(i, tag) for i in range(3_000)]
    producer = Producer(
        {"bootstrap.servers": kafka_broker.bootstrap, "enable.idempotence": True,
         "linger.ms": 5, "message.timeout.ms": 180_000}
    )  # fmt: skip

    def traffic() -> None:  # 300 at a time, ~10 s in all
        for a in range(0, len(bodies), 300):
            produce(producer, config, bodies[a : a + 300])
            time.sleep(1.0)

    sender = threading.Thread(target=traffic)
    sender.start()
    wait_for("traffic to be decided", lambda: group.decided() >= 600, 60)
    decided_before = group.decided()
    kafka_broker.stop(hard=True)  # SIGKILL: no clean shutdown
    time.sleep(3)
    kafka_broker.start()
    sender.join(240)
    assert not sender.is_alive()
    wait_for("every decision", lambda: len(decided_ids(config)) >= len(bodies), 180)

    counts = decided_ids(config)
    assert set(counts) == {b["transaction_id"] for b in bodies}
    assert max(counts.values()) == 1
    assert decided_before < len(bodies)  # the broker went away mid-stream
    assert worker.failures + worker.stats()["client_errors"] > 0  # and the worker saw it


@pytest.mark.ray
def test_kafka_app_decides_each_transaction_once_across_a_killed_consumer(
    service: str,
    service_ids: Any,
    app_args: dict[str, Any],
    kafka_broker: KafkaBroker,
    tmp_path: Path,
) -> None:
    """The Serve app's StreamConsumer on Kafka, SIGKILLed mid-stream: Serve starts another,
    which reads again what the dead one had read and not committed (asserted: the kill
    landed mid-stream), and still each transaction has one committed decision, the score
    offline gives, and each card's state counted each transaction once. Then the replay as
    a Ray Job of two tasks through the same topics."""
    import os
    import signal

    import numpy as np
    import pandas as pd
    from ray import serve

    from deployments.app import application
    from models.onnx import load_model
    from simulator.distributed import replay_distributed
    from simulator.kafka_replay import KafkaReplayOptions, replay_to_kafka
    from tests.service.conftest import PINNED
    from tests.service.test_stream import stream_frame
    from tests.shard_actors import assert_counted_once, kill_shard_actors
    from training.scoring import score_transactions

    tag = f"app{uuid.uuid4().hex[:6]}"
    config = topics(kafka_broker, tag)
    stream = {"enabled": True, "broker": "kafka", "consumers": 1, "read_count": 20,
              "kafka": config.model_dump()}  # fmt: skip
    args = {"n_user_shards": 2, "n_terminal_shards": 3, "state": {"backend": "memory"},
            "stream": stream, "id_key": app_args["id_key"]}  # fmt: skip
    serve.run(application(args, PINNED), name="fraud-kafka", route_prefix="/kafka")
    handle = serve.get_deployment_handle("StreamConsumer", app_name="fraud-kafka")
    opts = KafkaReplayOptions(
        bootstrap_servers=kafka_broker.bootstrap, input_topic=config.input_topic,
        decisions_topic=config.decisions_topic, labels=False, entry_size=20, chunk=200,
        rate=1_500, wait_seconds=120,
    )  # fmt: skip
    frame = stream_frame(5)
    seen: dict[str, Any] = {}

    def kill_mid_stream() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stats = handle.stats.remote().result()
            member = stats["partitions"][0]
            if member["transactions"] >= len(frame) // 4:
                os.kill(int(stats["pid"]), signal.SIGKILL)
                seen.update(pid=stats["pid"], position=member["position"])
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_mid_stream)
    try:
        killer.start()
        result = replay_to_kafka(frame, opts)
        killer.join()
        assert seen, "the consumer was not killed"
        after = handle.stats.remote().result()
        assert after["pid"] != seen["pid"]
        started = after["partitions"][0]["started_at"]
        # The new member began below where the dead one had read: records were read again.
        assert any(started.get(p, 1 << 62) < at for p, at in seen["position"].items()), (
            started, seen["position"],
        )  # fmt: skip

        assert result.errors == {}, result.errors  # no duplicate, none missing, none invalid
        assert len(result.rows) == len(frame)
        online = pd.DataFrame(result.rows).set_index("transaction_id")["score"]
        model = load_model("models/default")
        offline = score_transactions(frame, model, Thresholds(), use_labels=False)
        offline = offline.set_index("transaction_id")["score"]
        np.testing.assert_allclose(online.loc[offline.index], offline, atol=1e-6)
        assert_counted_once(frame, service_ids, 2, 3)

        # The simulator's Ray Job form: two tasks, each producing its cards and reading their
        # decisions back.
        more = stream_frame(6)
        path = tmp_path / "more.parquet"
        more.to_parquet(path)
        merged = replay_distributed(str(path), dataclasses.replace(opts, rate=None), workers=2)
        assert merged.errors == {} and len(merged.rows) == len(more)
        assert {r["transaction_id"] for r in merged.rows} == set(more["transaction_id"])
    finally:
        serve.delete("fraud-kafka")
        kill_shard_actors(2, 3)
