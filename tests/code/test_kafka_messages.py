"""Kafka messages as the stream path's entries, without a broker: the kind from the header
or, for a producer that sends plain JSON, from the value; offsets to commit and to rewind."""

from __future__ import annotations

import pytest
from confluent_kafka import Message

from deployments.stream.contract import StreamConfig
from deployments.stream.kafka import batch_of, client_settings, entry_of


def message(partition: int, offset: int, value: bytes, kind: str | None = None) -> Message:
    headers = [("kind", kind.encode())] if kind else None
    return Message(topic="in", partition=partition, offset=offset, value=value, headers=headers)


def test_kind_comes_from_the_header_or_the_json_shape() -> None:
    assert entry_of(message(2, 7, b"[{}]", "labels")).kind == "labels"
    assert entry_of(message(2, 7, b'{"transaction_id": "a"}')).kind == "tx"
    assert entry_of(message(2, 7, b'  [{"transaction_id": "a"}]')).kind == "txs"
    assert entry_of(message(2, 7, b"")).kind == ""  # nothing to decide: dead-lettered
    assert entry_of(message(2, 7, b"{}")).id == "2:7"


def test_a_batch_commits_past_its_last_offset_and_rewinds_to_its_first() -> None:
    batch = batch_of([message(0, 10, b"{}"), message(1, 3, b"{}"), message(0, 11, b"{}")])
    assert sorted((tp.partition, tp.offset) for tp in batch.commit) == [(0, 12), (1, 4)]
    assert sorted((tp.partition, tp.offset) for tp in batch.rewind) == [(0, 10), (1, 3)]
    assert [e.id for e in batch.entries] == ["0:10", "1:3", "0:11"]


def test_the_password_comes_from_the_environment_not_the_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = StreamConfig(
        broker="kafka",
        kafka={"client": {"security.protocol": "SASL_SSL"}, "password_env": "KAFKA_PW_TEST"},
    ).kafka
    assert "sasl.password" not in client_settings(config)
    monkeypatch.setenv("KAFKA_PW_TEST", "s3cret")
    settings = client_settings(config)
    assert settings["sasl.password"] == "s3cret"
    assert settings["security.protocol"] == "SASL_SSL"


def test_a_cluster_id_never_reads_as_an_option() -> None:
    """The storage tool's parser took `-t -x...` for a missing value (1 id in 64)."""
    import base64

    from cli.kafka import cluster_id

    ids = [cluster_id() for _ in range(2_000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
