"""StreamConsumer: the stream path's Serve deployment (only in the app when `stream.enabled`).

Redis Streams: each replica owns the partitions `p` with `p % world_size == rank` and runs
one loop per partition (one batch at a time per partition: a card's transactions stay in
order). Kafka: each replica is one member of the consumer group, which assigns the
partitions. Either way through the same shards, model, rules and desk as the HTTP ingress.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.util import metrics

from actors import heap
from deployments.scoring.service import ScoringService
from deployments.settings import AppArgs
from deployments.stream.contract import StreamLoop
from deployments.stream.redis import RedisStreams
from deployments.stream.worker import BatchDecider, PartitionWorker


@serve.deployment(name="StreamConsumer", ray_actor_options={"num_cpus": 0})
class StreamConsumer:
    def __init__(self, model: DeploymentHandle[Any], settings: AppArgs) -> None:
        self.config = settings.stream
        scoring = ScoringService(model, settings)
        self.scoring, self.pipeline, self.reporter = scoring, scoring.pipeline, scoring.reporter
        context = serve.get_replica_context()
        self.rank, self.world = context.rank.rank, max(context.world_size, 1)
        self.workers: list[StreamLoop]
        if self.config.broker == "kafka":
            from deployments.stream.kafka import KafkaWorker  # confluent-kafka only if used

            decider = self._decider(scoring)
            self.workers = [KafkaWorker(self.config, decider, member=f"r{self.rank}")]
        else:
            source = RedisStreams(self.config, consumer=f"scorer-{self.reporter.replica}")
            self.workers = [
                PartitionWorker(p, source, self._decider(scoring))
                for p in range(self.config.partitions)
                if p % self.world == self.rank
            ]
        self.lag = metrics.Gauge(
            "fraud_stream_lag", "Kafka: messages not yet consumed, by partition.",
            tag_keys=("partition",),
        )  # fmt: skip
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        heap.quiet()  # as the Ingress: Serve freezes what the replica holds (actors.heap)
        with contextlib.suppress(RuntimeError):  # no loop yet: check_health starts them
            self._start()

    def _decider(self, scoring: ScoringService) -> BatchDecider:
        return BatchDecider(
            scoring.score_applied,
            scoring.desk_service.feedback,
            self.config,
            scoring.pipeline.currency,
        )

    def _start(self) -> None:
        self.reporter.ensure_running()
        if not self._tasks or all(t.done() for t in self._tasks):
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(w.run(self._stop)) for w in self.workers]

    async def check_health(self) -> None:
        """Serve calls this periodically: (re)start the partition loops if needed, and
        export the consumer lag."""
        self._start()
        for w in self.workers:
            for p, behind in w.stats().get("lag_by_partition", {}).items():
                self.lag.set(behind, tags={"partition": str(p)})

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """The same `user_config` as the Ingress (thresholds, thresholds_from_model)."""
        self.scoring.reconfigure(user_config)

    def __del__(self) -> None:
        """Serve stops the replica: the loops end (a Kafka member closes its clients), and
        what the decision record still buffers is written."""
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
        scoring = getattr(self, "scoring", None)  # absent if __init__ failed
        if scoring is not None:
            scoring.close()

    async def stats(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "rank": self.rank,
            "world_size": self.world,
            "broker": self.config.broker,
            "partitions": [w.stats() for w in self.workers],
        }
