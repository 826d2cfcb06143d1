"""One Serve app for all service tests (Ray on 2 cores: start it once, keep tests fat)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from features.ids import IdHasher
from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
# The test apps decide at fixed thresholds (the served default is the model card's, which
# moves whenever the default model is retrained); the tests' expectations are written
# against these.
PINNED = {"thresholds": {"review": 0.5, "block": 0.9}}


def wait_healthy(url: str, what: str = "service", timeout_s: float = 60) -> None:
    """Until `url`'s /healthz answers 200 (an app just deployed), at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while httpx.get(f"{url}/healthz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, f"{what} did not become healthy in {timeout_s:.0f} s"
        time.sleep(0.5)


@pytest.fixture(scope="session")
def app_args(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The app's args: small shard counts, state in a temporary SQLite directory."""
    state_dir = tmp_path_factory.mktemp("state")
    return {
        "id_key": {"file": str(state_dir / "id.key")},  # made on first start
        "n_user_shards": 3,
        "n_terminal_shards": 2,
        "max_batch_transactions": 500,
        "state": {"backend": "sqlite", "path": str(state_dir), "snapshot_every": 500},
        "decision_record": {"path": str(state_dir / "decisions"), "flush_seconds": 0.5},
        # Its tests compare answers with offline scoring on a loaded 2-core machine, so a
        # slow call must be waited for, not answered degraded; the Redis app of
        # test_faults.py runs with the default deadline, and tests/code/test_deadline.py
        # checks the degraded path itself.
        "deadline_ms": 60_000,
    }


@pytest.fixture(scope="session")
def service_ids(service: str, app_args: dict[str, Any]) -> IdHasher:
    """The service's own id hasher (its key file exists once the service has started)."""
    from features.id_key import IdKeyConfig

    return IdKeyConfig.model_validate(app_args["id_key"]).hasher(REPO)


@pytest.fixture(scope="session")
def service(ray_cluster: None, app_args: dict[str, object]) -> Iterator[str]:
    from ray import serve

    from deployments.app import application
    from tests.shard_actors import kill_shard_actors

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    args = app_args
    serve.run(application(args, PINNED), name="fraud", route_prefix="/")
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url)
    yield url
    serve.shutdown()
    # Shard actors are detached (they outlive an ingress by design): remove them explicitly.
    kill_shard_actors(args["n_user_shards"], args["n_terminal_shards"], args)
