"""Redis Streams behind `StreamSource`: one stream per partition, one consumer group.

XREADGROUP reads, XAUTOCLAIM takes over a dead consumer's pending entries, XADD (MAXLEN ~)
writes decisions, XACK acknowledges; results and acks each go in one pipelined round trip.
"""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from deployments.stream.contract import DeadLetter, Entry, StreamConfig


class RedisStreams:
    def __init__(self, config: StreamConfig, consumer: str) -> None:
        self.config, self.consumer = config, consumer
        self.redis = aioredis.Redis.from_url(config.redis_url, socket_timeout=30)
        self._groups: set[int] = set()

    def input_key(self, partition: int) -> str:
        return f"{self.config.input_prefix}:{partition}"

    def results_key(self, partition: int) -> str:
        return f"{self.config.results_prefix}:{partition}"

    async def _ensure_group(self, partition: int) -> None:
        if partition in self._groups:
            return
        try:
            await self.redis.xgroup_create(
                self.input_key(partition), self.config.group, id="0", mkstream=True
            )
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._groups.add(partition)

    async def read(self, partition: int, count: int, block_ms: int, pending: bool) -> list[Entry]:
        await self._ensure_group(partition)
        reply: Any = await self.redis.xreadgroup(
            self.config.group,
            self.consumer,
            {self.input_key(partition): "0" if pending else ">"},
            count=count,
            block=None if pending else block_ms,
        )
        out = []
        for _, entries in reply or ():
            for entry_id, fields in entries:
                if not fields:  # acknowledged and deleted meanwhile
                    continue
                kind = fields.get(b"kind", b"")  # a missing kind must not stall the partition
                out.append(
                    Entry(
                        entry_id.decode(), kind.decode(errors="replace"), fields.get(b"body", b"")
                    )
                )
        return out

    async def reclaim(self, partition: int, min_idle_ms: int) -> int:
        await self._ensure_group(partition)
        claimed, start = 0, "0-0"
        while True:
            reply = await self.redis.xautoclaim(
                self.input_key(partition), self.config.group, self.consumer, min_idle_ms,
                start_id=start, count=1000,
            )  # fmt: skip
            start, entries = reply[0], reply[1]  # (justid=True drops the cursor in redis-py)
            claimed += len(entries)
            if start in (b"0-0", "0-0"):
                return claimed

    async def write_results(self, partition: int, results: list[dict[str, Any]]) -> None:
        if not results:
            return
        pipe = self.redis.pipeline(transaction=False)
        key, maxlen = self.results_key(partition), self.config.results_maxlen
        for r in results:
            pipe.xadd(key, cast("dict[Any, Any]", r), maxlen=maxlen, approximate=True)
        await pipe.execute()

    async def dead_letter(self, partition: int, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        pipe = self.redis.pipeline(transaction=False)
        key = f"{self.config.dead_letter_prefix}:{partition}"
        for d in letters:
            fields = {"src": d.entry.id, "kind": d.entry.kind[:64], "bytes": len(d.entry.body),
                      "reason": d.reason}  # fmt: skip
            pipe.xadd(key, cast("dict[Any, Any]", fields), maxlen=100_000, approximate=True)
        await pipe.execute()

    async def ack(self, partition: int, ids: list[str]) -> None:
        if ids:
            await self.redis.xack(self.input_key(partition), self.config.group, *ids)

    async def close(self) -> None:
        await self.redis.aclose()
