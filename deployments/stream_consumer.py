"""StreamConsumer: the stream path's Serve deployment (only in the app when `stream.enabled`).

Each replica owns the partitions `p` with `p % world_size == rank` and runs one loop per
partition (one batch at a time per partition: a card's transactions stay in order), through
the same shards, model, rules and desk as the HTTP ingress.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from actors.ray_shards import RayShardClient
from deployments.desk_service import DeskService
from deployments.ingress_config import IngressConfig, thresholds_for
from deployments.metrics import ServiceMetrics
from deployments.model_client import HandleModel
from deployments.pipeline import ScoringPipeline
from deployments.redis_streams import RedisStreams
from deployments.reporter import Reporter
from deployments.stream_processor import PartitionWorker
from deployments.streams import StreamConfig
from features.decision import Thresholds


@serve.deployment(name="StreamConsumer", ray_actor_options={"num_cpus": 0})
class StreamConsumer:
    def __init__(self, model: DeploymentHandle, settings: dict[str, Any]) -> None:
        self.config = StreamConfig(**settings["stream"])
        shard_settings = {k: settings[k] for k in ("engine", "state", "dedup")}
        self.shards = RayShardClient(
            settings["n_user_shards"], settings["n_terminal_shards"], shard_settings,
            retry_for_s=settings["shard_retry_seconds"],
        )  # fmt: skip
        self.metrics = ServiceMetrics()
        self.pipeline = ScoringPipeline(
            self.shards,
            HandleModel(model, retry_for_s=settings["model_retry_seconds"]),
            Thresholds(),
            sink=self.shards,
            on_batch=self.metrics.batch,
        )
        self.desk = DeskService(self.shards, self.pipeline)
        self.decision_config = IngressConfig()
        self.model_card: dict[str, Any] = {}
        self.reporter = Reporter(
            self.shards, self.desk, self.pipeline, model, self.metrics, self._on_card
        )
        context = serve.get_replica_context()
        self.rank, self.world = context.rank.rank, max(context.world_size, 1)
        self.source = RedisStreams(self.config, consumer=f"scorer-{self.reporter.replica}")
        self.workers = [
            PartitionWorker(
                p, self.source, self.pipeline.score_items, self.desk.feedback, self.config
            )
            for p in range(self.config.partitions)
            if p % self.world == self.rank
        ]
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        with contextlib.suppress(RuntimeError):  # no loop yet: check_health starts them
            self._start()

    def _start(self) -> None:
        self.reporter.ensure_running()
        if not self._tasks or all(t.done() for t in self._tasks):
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(w.run(self._stop)) for w in self.workers]

    async def check_health(self) -> None:
        """Serve calls this periodically: (re)start the partition loops if needed."""
        self._start()

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """The same `user_config` as the Ingress (thresholds, thresholds_from_model)."""
        self.decision_config = IngressConfig(**user_config)
        self.pipeline.thresholds = thresholds_for(self.decision_config, self.model_card)

    def _on_card(self, card: dict[str, Any]) -> None:
        self.model_card = card
        self.pipeline.thresholds = thresholds_for(self.decision_config, card)

    async def stats(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "rank": self.rank,
            "world_size": self.world,
            "partitions": [w.stats() for w in self.workers],
        }
