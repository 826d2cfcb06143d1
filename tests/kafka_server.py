"""A Kafka broker of a test session's own (KRaft, one node) on free loopback ports, from the
jars `make setup` fetched (fetched here when absent), stopped by its process id."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.kafka import BrokerError, KafkaBroker, fetch_jars
from tests.ports import free_port


def own_broker(directory: Path) -> KafkaBroker:
    try:
        fetch_jars()
    except BrokerError as e:
        pytest.fail(f"the Kafka broker's jars are needed (`make setup`): {e}")
    broker = KafkaBroker(directory, free_port(), free_port(), heap_mb=384)
    broker.start()
    return broker
