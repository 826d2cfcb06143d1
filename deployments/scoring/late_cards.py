"""Card steps that missed an answer's deadline, applied in order once their shard answers.

When a card shard does not answer within a request's budget, the service answers without
its state (`ScoringPipeline.features`, degraded) and hands the step here. The step already
sent keeps going; from then on, until the shard has applied everything queued, every later
step for that shard joins the queue behind it, so a card's transactions reach its state in
the order they came, as offline. A drainer per shard sends the queue, retrying every second
however long the shard is away (shards deduplicate, so a step that ran before its
connection broke changes nothing when sent again). Each step's future gives its answer once
applied: its caller sends the terminal writes then, as on the answer path.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass

import numpy as np

from actors.client.protocol import ShardClient
from actors.events import CardAnswer, CardEvents

log = logging.getLogger(__name__)
RETRY_S = 1.0


@dataclass
class _Step:
    events: CardEvents
    done: asyncio.Future[CardAnswer]
    call: asyncio.Future[CardAnswer] | None = None  # already sent (its answer may come)


class CardBacklog:
    def __init__(self, shards: ShardClient) -> None:
        self.shards = shards
        self._queues: dict[int, list[_Step]] = {}
        self._drains: set[asyncio.Task[None]] = set()
        self.retries = 0

    def behind(self, shard: int) -> bool:
        """Whether this shard has steps waiting: a new step must queue behind them."""
        return shard in self._queues

    @property
    def pending(self) -> int:
        """Transactions whose card step is queued, not yet applied."""
        return sum(len(s.events) for q in self._queues.values() for s in q)

    def queue(
        self, shard: int, events: CardEvents, call: asyncio.Future[CardAnswer] | None = None
    ) -> asyncio.Future[CardAnswer]:
        """Apply `events` after every step queued for this shard; `call`: the step was
        already sent (its request stopped waiting for it). The future gives the answer."""
        done: asyncio.Future[CardAnswer] = asyncio.get_running_loop().create_future()
        step = _Step(events, done, call)
        queue = self._queues.get(shard)
        if queue is not None:
            queue.append(step)  # sent (again, if it went out already) after those before it
        else:
            self._queues[shard] = [step]
            task = asyncio.get_running_loop().create_task(self._drain(shard))
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)
        return done

    def close(self) -> None:
        """The replica stops: what is queued is dropped here (the kept copies of
        `actors.client.late_steps` are applied by another replica)."""
        for queue in self._queues.values():
            for step in queue:
                if step.call is not None:
                    step.call.cancel()
        for task in list(self._drains):
            task.cancel()

    async def _drain(self, shard: int) -> None:
        """Send the queue in order: a step already sent is awaited alone; the steps queued
        behind it go together, as one batch (one round trip however many wait, so a shard
        that is back catches up at its batch rate, not one request at a time)."""
        queue = self._queues[shard]
        try:
            while queue:
                if queue[0].call is not None:
                    steps = [queue[0]]
                else:
                    steps = list(itertools.takewhile(lambda s: s.call is None, queue))
                joined = _Step(CardEvents.joined([s.events for s in steps]), steps[0].done)
                joined.call = steps[0].call
                answer = await self._apply(shard, joined)
                del queue[: len(steps)]
                at = 0
                for step in steps:
                    n = len(step.events)
                    if not step.done.done():
                        step.done.set_result(answer.rows(np.arange(at, at + n)))
                    at += n
        finally:
            self._queues.pop(shard, None)
            for step in queue:  # only on cancellation (the replica stops)
                step.done.cancel()

    async def _apply(self, shard: int, step: _Step) -> CardAnswer:
        """The shard's answer to this step, however many tries it takes."""
        call, step.call = step.call, None
        while True:
            try:
                if call is not None:
                    return await call
                return await self.shards.user_step(shard, step.events)
            except Exception as e:  # away (`Unavailable`) or failed: nothing is dropped
                call = None
                self.retries += 1
                log.warning("card shard %d: late step retried (%s)", shard, type(e).__name__)
                await asyncio.sleep(RETRY_S)
