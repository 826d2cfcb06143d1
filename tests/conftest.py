"""Shared fixtures: small simulated streams, the handbook file, one Ray cluster per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from features.transactions import normalise
from simulator.config import SimulationConfig
from simulator.generate import write_parquet

if TYPE_CHECKING:
    from cli.kafka import KafkaBroker

REPO = Path(__file__).resolve().parent.parent
HANDBOOK = REPO.parent / "shared" / "datasets" / "handbook" / "transactions.parquet"


@pytest.fixture(scope="session")
def small_stream_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """45 days of 1,500 cards: enough for every window and scenario, fast to replay."""
    path = tmp_path_factory.mktemp("sim") / "tx.parquet"
    cfg = SimulationConfig(
        n_customers=1_500, n_terminals=3_000, n_days=45, seed=3, card_testing_per_day=2
    )
    write_parquet(cfg, path)
    return path


@pytest.fixture(scope="session")
def small_stream(small_stream_path: Path) -> pd.DataFrame:
    return normalise(pd.read_parquet(small_stream_path))


@pytest.fixture(scope="session")
def handbook_path() -> Path:
    if not HANDBOOK.exists():
        pytest.fail(f"the handbook dataset is expected at {HANDBOOK} (../shared beside the repo)")
    return HANDBOOK


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of the session's own on a free port (Debian's redis-server), stopped at the
    end: the suite needs no Redis started before it."""
    from tests.redis_server import OwnRedis

    server = OwnRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A Kafka broker of the session's own (KRaft, free ports), started by the first test
    that needs it and stopped at the end."""
    from tests.kafka_server import own_broker

    broker = own_broker(tmp_path_factory.mktemp("kafka"))
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray cluster for the whole session (2 cores: start it once)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
