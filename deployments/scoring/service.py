"""What every deciding replica holds (the Ingress and the StreamConsumer alike): the shard
and desk client, the scoring pipeline, the analyst's desk service, metrics, the background
reporter, and which thresholds are in force. One place, so both paths decide identically.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from actors.client.late_steps import LateSteps
from actors.client.recorder import DecisionRecorder
from actors.client.remote import RayShardClient
from actors.paths import REPO_ROOT
from actors.store.backends import bind_id_key
from deployments.http.schemas import TransactionIn
from deployments.model.inprocess import InProcessModel
from deployments.model.remote import RemoteModel
from deployments.model.served import ServedModel
from deployments.scoring.decide_config import IngressConfig, thresholds_for
from deployments.scoring.desk_service import DeskService
from deployments.scoring.metrics import ServiceMetrics
from deployments.scoring.pipeline import Answer, ScoringPipeline
from deployments.scoring.reporter import Reporter
from deployments.settings import AppArgs
from features.spec import FEATURE_NAMES
from policy.decision import Thresholds
from policy.drift import DriftMonitor
from policy.preview import RecentDecisions

log = logging.getLogger(__name__)


class ScoringService:
    def __init__(self, model: Any, settings: AppArgs) -> None:
        ids = settings.id_key.hasher(REPO_ROOT)  # refuses to start without a key
        bind_id_key(settings.state.open(REPO_ROOT), ids.key_id)
        self.shards = RayShardClient(
            settings.n_user_shards,
            settings.n_terminal_shards,
            settings.shards,
            retry_for_s=settings.shard_retry_seconds,
            transport=settings.shard_transport,
            call_timeout_s=settings.shard_call_timeout_seconds,
        )
        self.metrics = ServiceMetrics()
        self.model = model  # the ModelScorer's handle
        remote = RemoteModel(model, retry_for_s=settings.model_retry_seconds)
        self.remote = remote
        # In process: the same model the ModelScorer serves, one hop fewer per batch.
        self.inprocess = InProcessModel(remote) if settings.score_in_process else None
        record = settings.decision_record
        store = record.open(REPO_ROOT)
        journal = self.shards.sink.store
        self.recorder = DecisionRecorder(store, record, journal) if store is not None else None
        self.pipeline = ScoringPipeline(
            self.shards,
            self.inprocess or remote,
            Thresholds(),
            sink=self.shards.sink,
            on_batch=self.metrics.batch,
            approx_reasons=settings.reasons == "approx",
            ids=ids,
            fallback=settings.fallback,
            recorder=self.recorder,
            late_steps=LateSteps(journal),
            currency=settings.engine.currency,
            drift=DriftMonitor(FEATURE_NAMES, settings.drift),
            recent=RecentDecisions(len(FEATURE_NAMES)),
        )
        self.desk = self.shards.desk
        self.desk_service = DeskService(self.desk, self.pipeline, store, settings.engine)
        self.config = IngressConfig()
        self.served: ServedModel | None = None  # what the ModelScorer serves, once read
        self._reading = asyncio.Lock()
        self.unaudited: list[tuple[dict[str, str | None] | None, dict[str, str | None]]] = []
        self.reporter = Reporter(
            self.shards.sink, self.desk_service, self.pipeline, model, self.metrics, self._on_served
        )

    async def score(
        self,
        txs: Sequence[TransactionIn],
        include_features: bool = False,
        deadline: float | None = None,
    ) -> list[Answer]:
        await self.ready()
        return await self.pipeline.score(txs, include_features, deadline)

    async def score_items(
        self,
        txs: Sequence[TransactionIn],
        include_features: bool = False,
        deadline: float | None = None,
    ) -> list[Answer | None]:
        await self.ready()
        return await self.pipeline.score_items(txs, include_features, deadline)

    async def score_applied(self, txs: Sequence[TransactionIn]) -> list[Answer | None]:
        await self.ready()
        return await self.pipeline.score_applied(txs)

    def close(self) -> None:
        """The replica is stopping: write what the decision record still buffers."""
        if self.recorder is not None:
            self.recorder.close()

    async def ready(self) -> None:
        """Decide nothing before the served model's card has been read: unless thresholds
        are pinned, its thresholds decide (one attribute check once it has been read)."""
        if self.served is None:
            async with self._reading:
                if self.served is None:
                    self._observe(await self.remote.served())

    async def model_version(self) -> str | None:
        """The version answers are scored with, for the health check: the local copy's when
        one is loaded (then a ModelScorer restart costs no answer, so it must not fail the
        check either), else the ModelScorer's, asked once without retries; None while it is
        away or has no model."""
        inprocess = self.inprocess
        if inprocess is not None and inprocess.serving is not None:
            return inprocess.serving.version
        try:
            served: ServedModel = await self.model.served.remote()
        except Exception:  # the model replica is down or has no model
            return None
        return served.version

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """`user_config`: thresholds, or `thresholds_from_model` (the card's cost-optimal)."""
        self.config = IngressConfig(**user_config)
        self.pipeline.thresholds = thresholds_for(self.config, self.served)

    def _observe(self, served: ServedModel) -> None:
        """Take the served model's thresholds; queue a change for the audit log."""
        before = _versions(self.served) if self.served is not None else None
        if before != _versions(served):  # a promotion, rollback or shadow change
            self.unaudited.append((before, _versions(served)))
        self.served = served
        self.pipeline.thresholds = thresholds_for(self.config, served)

    async def _on_served(self, served: ServedModel) -> None:
        """Follow the served model first, then report changes to the audit log: a desk that
        is away delays an entry (kept and sent on the next tick), never the model."""
        self._observe(served)
        if self.inprocess is not None:
            await self.inprocess.follow(served)
        while self.unaudited:
            await self.desk.served_model(*self.unaudited[0])
            self.unaudited.pop(0)


def _versions(served: ServedModel) -> dict[str, str | None]:
    return {"version": served.version, "shadow_version": served.shadow_version}
