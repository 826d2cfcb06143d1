"""A replica's background report to the desk, shared by the Ingress and the StreamConsumer.

Every `REPORT_INTERVAL_S`: one desk call carrying the LEGIT-only batches scored since the
last tick, request latencies and shadow agreement; its answer says whether the rules changed.
Before it, the flagged batches of the replica's outbox go to the desk
(`actors.client.outbox`), which then drops them. Every second tick the model card is read again
(which model to score with in process, the model version metric, cost thresholds); every
`ADOPT_EVERY_TICKS` the outboxes of replicas that are gone are delivered.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from actors.client.outbox import DeskOutbox
from deployments.http.schemas import UNKNOWN_FIELDS
from deployments.model.served import ServedModel
from deployments.scoring.desk_service import REPORT_INTERVAL_S, DeskService
from deployments.scoring.metrics import ServiceMetrics
from deployments.scoring.pipeline import ScoringPipeline

log = logging.getLogger(__name__)
ADOPT_EVERY_TICKS = 60  # look for the outboxes of replicas that are gone (every ~30 s)
RECORD_ADOPT_EVERY_TICKS = 10  # ...and for their decision journals and late steps (~5 s)


class Reporter:
    def __init__(
        self,
        sink: DeskOutbox,
        desk: DeskService,
        pipeline: ScoringPipeline,
        model: Any,
        metrics: ServiceMetrics,
        on_served: Callable[[ServedModel], Awaitable[None]] | None = None,
    ) -> None:
        self.sink, self.desk, self.pipeline = sink, desk, pipeline
        self.model, self.metrics, self.on_served = model, metrics, on_served
        self.replica = uuid.uuid4().hex[:8]
        self.latencies: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        """Start (or restart) the loop on the running event loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        ticks, resent = 0, False
        while True:
            if not resent:  # once per replica: the writes a replica that died may have lost
                try:
                    sent = await self.pipeline.resend_recent()
                    resent = True
                    log.info("reporter: re-sent %d recent terminal writes", sent)
                except Exception as e:  # shards restarting: again on the next tick
                    log.warning("reporter: recent writes not re-sent: %s", type(e).__name__)
            batches = self.sink.pending.take()
            lat, self.latencies = self.latencies, []
            pipeline = self.pipeline
            retried = {
                "shard_call": getattr(pipeline.shards, "retries", 0),
                "terminal_write": pipeline.writes.retries,
                "late_card_step": pipeline.late.retries,
            }
            self.metrics.flush(
                retried,
                pipeline.degraded,
                self.sink.unsent,
                pipeline.late.pending,
                UNKNOWN_FIELDS.dropped,
            )
            drift = None
            if pipeline.drift is not None:  # bins what the answers buffered since the last tick
                pipeline.drift.update()
                drift = pipeline.drift.report()
                self.metrics.drift(drift)
            if pipeline.recent is not None:  # the preview's ring takes what was buffered
                pipeline.recent.flush()
            recorder = pipeline.recorder
            if recorder is not None:
                try:
                    if recorder.due():
                        await recorder.flush()
                    if ticks % RECORD_ADOPT_EVERY_TICKS == 0:
                        await recorder.adopt()
                except Exception as e:  # the state store away: the journal keeps the rows
                    log.warning("reporter: decision record %s", type(e).__name__)
                self.metrics.record(recorder.written_rows, recorder.held)
            if ticks % RECORD_ADOPT_EVERY_TICKS == 0:
                try:  # late steps kept by replicas that are gone
                    await pipeline.adopt_late()
                except Exception as e:  # a shard still away: the next round
                    log.warning("reporter: late steps %s", type(e).__name__)
            try:
                await self.sink.deliver()
                shadow = vars(self.pipeline.shadow).copy()
                state = await self.sink.desk.tick(
                    self.replica, batches, np.asarray(lat), shadow, drift
                )
            except Exception as e:  # the desk restarting: its batches go with the next tick
                self.sink.pending.put_back(batches)
                log.warning("reporter: desk %s", type(e).__name__)
            else:  # delivered: a failure below must not send the batches again
                try:
                    await self.desk.refresh_policy(state["policy_version"])
                    if ticks % 2 == 0:
                        await self._follow_model(state)
                    if ticks % ADOPT_EVERY_TICKS == 0:
                        await self.sink.adopt(await self.sink.orphans())
                except Exception as e:  # the desk or model restarting: try again next tick
                    log.warning("reporter: %s", type(e).__name__)
            ticks += 1
            await asyncio.sleep(REPORT_INTERVAL_S)

    async def _follow_model(self, state: dict[str, int]) -> None:
        served: ServedModel = await self.model.served.remote()
        if self.on_served is not None:
            await self.on_served(served)
        self.metrics.state(
            served.version, served.shadow_version, state["reviews_open"], state["policy_version"]
        )
