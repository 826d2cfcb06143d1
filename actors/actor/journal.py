"""Write-ahead journaling, checkpoints and recovery for a state-owning actor.

A subclass (a card shard, a terminal shard, the desk) provides a few hooks and calls
`_submit(op)` for every change; this base makes the change durable in the `StateStore`
before applying it, checkpoints every `snapshot_every` changes or `snapshot_rows` rows off
the request path, and on start rebuilds the state from the checkpoints plus the journal
after them, through the same `_apply`. Records and checkpoints are `actors.store.records`'
typed format, never pickles.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from actors.actor.compactor import CompactJob, run_child
from actors.actor.layout import ShardMoved
from actors.actor.webhooks import WebhookSettings
from actors.paths import REPO_ROOT
from actors.store import records
from actors.store.backends import (
    Fenced,
    MemoryStoreConfig,
    StateStore,
    StoreConfig,
    Stored,
)
from actors.tls import WireTlsConfig
from features.config import EngineConfig
from features.groups import DEFAULT_GROUPS

log = logging.getLogger(__name__)


class DedupConfig(BaseModel):
    """`dedup:` in serve_config.yaml: how long and how many transaction ids are remembered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_hours: float = Field(
        24.0, gt=0, description="Kept in memory: event time behind the newest seen."
    )
    max_entries: int = Field(200_000, ge=1, description="Kept in memory, per shard.")
    retain_days: float = Field(
        7.0,
        ge=0,
        description="Recognised from the state store's archive once out of memory: event "
        "time behind the newest seen (0: memory only).",
    )


class ShardSettings(BaseModel):
    """What every journaled actor is built from (the app's `engine`, `state`, `dedup`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: EngineConfig = EngineConfig()
    state: StoreConfig = MemoryStoreConfig()
    dedup: DedupConfig = DedupConfig()
    wire_tls: WireTlsConfig | None = None
    key_groups: int = Field(DEFAULT_GROUPS, ge=1, le=1 << 20)
    actor_cpus: float = Field(0.0, ge=0, le=64)
    webhooks: WebhookSettings = WebhookSettings()  # the desk's (actors.actor.webhooks)


class Journaled(ABC):
    """The journaling base. A subclass sets `kind` (and `incremental`) and provides:

    - `_init_state()`: empty state (called before recovery);
    - `_apply(op)`: apply one journaled operation and return its answer; it must be
      deterministic, since recovery replays the journal through it. An operation is a
      tuple of plain values and arrays unless the kind maps its own (`_record`,
      `_operation`: the shards journal their typed batches, `actors.events`);
    - `_capture(full)`: called under the request lock, so it must be quick: the state as
      plain values and arrays (`actors.store.records` stores them), whole when `full` or when
      the kind is not `incremental`, else only what changed since the last capture;
    - `_merge(base, delta)`: a whole state with a later capture's changes applied (pure:
      it runs off the request path, on what the store holds);
    - `_load(form)`: the live state from a whole one;
    - optionally `_warm()`: load what the first request would (compiled kernels).

    Every `snapshot_every` changes, or sooner once they hold `snapshot_rows` rows (`_rows_in`),
    a capture is taken under the lock and written by a thread of the actor's own, so a
    checkpoint costs a request only the capture; every `compact_every` incremental
    checkpoints are folded into a full one the same way.
    """

    kind: ClassVar[str] = "journaled"
    incremental: ClassVar[bool] = False

    def __init__(
        self,
        shard: int,
        n_shards: int,
        settings: ShardSettings | dict[str, Any] | None,
        store: StateStore | None = None,
        reader: bool = False,
    ) -> None:
        """`reader`: only to read the stored state (a rescale's source): it takes no
        incarnation of its own (`StateStore.fence`), so the running one is not fenced."""
        self.shard, self.n_shards = shard, n_shards
        self.reader = reader
        self.settings = (
            settings if isinstance(settings, ShardSettings) else ShardSettings(**(settings or {}))
        )
        self.name = f"{self.kind}-{shard}-of-{n_shards}"
        # A store opened from the config can be opened again by the compactor's process.
        self._reopenable = store is None and self.settings.state.backend != "memory"
        self.store: StateStore = store or self.settings.state.open(REPO_ROOT)
        self.seq = 0
        self.epoch = 0  # this incarnation's, from `StateStore.fence` in `_recover`
        self.snapshot_seq = 0  # the last record a capture covers (written or in flight)
        self._rows_since = 0  # rows in the records since that capture
        self.checkpoint_failures = 0
        # The writer's recent work: (what, seconds, bytes), what = delta, full or compaction.
        self.checkpoint_times: deque[tuple[str, float, int]] = deque(maxlen=64)
        # Requests arrive as Ray calls and over the shard's socket (`actors.wire`): applied
        # one at a time either way.
        self._lock = threading.Lock()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-checkpoints")
        self._pending: Future[None] | None = None
        self._need_full = False  # a capture was lost: the next must be whole
        self._deltas = 0  # incremental checkpoints stored since the last full one
        self.sealed = False  # refuses writes (`ShardMoved`): its state belongs elsewhere
        self._init_state()
        started = time.perf_counter()
        self.replayed = self._recover()
        self.recovery_seconds = time.perf_counter() - started
        self._started()
        self._warm()

    @abstractmethod
    def _init_state(self) -> None: ...

    @abstractmethod
    def _apply(self, op: Any) -> Any: ...

    @abstractmethod
    def _capture(self, full: bool) -> dict[str, Any]: ...

    @classmethod
    def _merge(cls, base: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
        """A kind that is not `incremental` captures its whole state every time."""
        return delta

    @abstractmethod
    def _load(self, form: dict[str, Any]) -> None: ...

    def _checkpoint_due(self) -> bool:
        """Whether to checkpoint before `snapshot_every` records (a shard whose dedup
        entries wait in memory for a checkpoint to archive them)."""
        return False

    def _archive(self, capture: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Called with each capture before it is stored, off the request path (the
        shards put their dedup entries in the store's archive)."""

    def _started(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Called once the state is rebuilt, before the first request."""

    def _warm(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Load what the first request would, so the first requests after a start or
        restart do not pay it."""

    @classmethod
    def _fold(cls, stored: Stored) -> dict[str, Any] | None:
        """The whole state the checkpoints in `stored` hold, or None without one."""
        if stored.base is None:
            if stored.deltas:
                raise records.RecordFormatError(f"{cls.kind}: incremental checkpoints, no base")
            return None
        form: dict[str, Any] = records.decode(stored.base)
        for _, delta in stored.deltas:
            form = cls._merge(form, records.decode(delta))
        return form

    def _recover(self) -> int:
        # A new incarnation first fences out the one it replaces: that one may still be
        # running, cut off, with writes in flight that a healed link would deliver late.
        self.epoch = 0 if self.reader else self.store.fence(self.name)
        stored = self.store.load(self.name)
        form = self._fold(stored)
        if form is not None:
            self._load(form)
        self._deltas = len(stored.deltas)
        self._need_full = form is None  # a delta needs a base to apply to
        self.seq = self.snapshot_seq = stored.seq
        for s, record in stored.log:  # changes the next capture holds: the log has them
            op = self._operation(records.decode(record))
            self._apply(op)
            self._rows_since += self._rows_in(op)
            self.seq = max(self.seq, s)
        return len(stored.log)

    def _rows_in(self, op: Any) -> int:
        """How many rows `op` changes (`snapshot_rows` counts them): one, unless the kind
        applies batches."""
        return 1

    def _record(self, op: Any) -> Any:
        """What the journal stores for `op` (plain values and arrays)."""
        return op

    def _operation(self, record: Any) -> Any:
        """The operation a journal record holds (the inverse of `_record`)."""
        return tuple(record)

    def _submit(self, op: Any) -> Any:
        """Journal, then apply: an answered request is always in the store."""
        record = records.encode(self._record(op))
        with self._lock:
            if self.sealed:
                raise ShardMoved(f"{self.name}: its key groups belong to another layout")
            seq = self.seq + 1
            try:
                self.store.append(self.name, seq, record, self.epoch)  # may raise
            except Fenced as e:  # replaced: whoever calls must find the new incarnation
                self.sealed = True
                raise ShardMoved(f"{self.name}: replaced by a newer incarnation") from e
            self.seq = seq
            result = self._apply(op)
            self._rows_since += self._rows_in(op)
            state = self.settings.state
            due = (
                self.seq - self.snapshot_seq >= state.snapshot_every
                or self._rows_since >= state.snapshot_rows
            )
            if (due or self._checkpoint_due()) and (self._pending is None or self._pending.done()):
                full = self._need_full or not self.incremental
                self._need_full = False
                capture = self._capture(full)
                self.snapshot_seq, self._rows_since = self.seq, 0
                self._pending = self._writer.submit(self._write, self.seq, capture, full)
            return result

    def _write(self, seq: int, capture: dict[str, Any], full: bool) -> None:
        """The checkpoint writer's job: store one capture, compact when due. A failure
        loses the capture, so the next one is taken whole; the journal keeps everything
        since the last stored checkpoint meanwhile."""
        try:
            started = time.perf_counter()
            self._archive(capture)
            data = records.encode(capture)
            self.store.checkpoint(self.name, seq, data, full, self.epoch)
            took = time.perf_counter() - started
            self.checkpoint_times.append(("full" if full else "delta", took, len(data)))
            self._deltas = 0 if full else self._deltas + 1
            if self._deltas >= self.settings.state.compact_every:
                started = time.perf_counter()
                self._compact()
                self.checkpoint_times.append(("compaction", time.perf_counter() - started, 0))
                self._deltas = 0
        except Exception:
            self._need_full = True
            self.checkpoint_failures += 1
            log.exception(
                "%s: checkpoint at %d not stored; the next is taken whole", self.name, seq
            )

    def _compact(self) -> None:
        """Fold the incremental checkpoints into a full one: in a process of its own when
        the store can be opened there (decoding and encoding a whole state would hold this
        process's interpreter lock for as long), else here (stores handed in: tests)."""
        if self._reopenable:
            job = CompactJob(
                actor=f"{type(self).__module__}:{type(self).__qualname__}", name=self.name,
                epoch=self.epoch, state=self.settings.state.model_dump(),
                repo_root=str(REPO_ROOT),
            )  # fmt: skip
            run_child(job)
            return
        stored = self.store.checkpoints(self.name)
        form = self._fold(stored)
        if form is not None and stored.deltas:
            self.store.checkpoint(
                self.name, stored.seq, records.encode(form), full=True, epoch=self.epoch
            )

    def checkpoint(self) -> None:
        """Checkpoint the whole state now, in the caller's thread (operators, tests)."""
        self.flush()
        with self._lock:
            capture = self._capture(full=True)
            self.snapshot_seq = seq = self.seq
            self._rows_since = 0
        self._archive(capture)
        self.store.checkpoint(self.name, seq, records.encode(capture), True, self.epoch)
        self._deltas = 0
        self._need_full = False

    def checkpoint_stats(self) -> dict[str, Any]:
        """For `/v1/stats`: failures, and the writer's last few jobs."""
        recent = list(self.checkpoint_times)[-4:]
        return {
            "checkpoint_failures": self.checkpoint_failures,
            "checkpoints": [{"kind": k, "seconds": round(t, 4), "bytes": b} for k, t, b in recent],
        }

    def flush(self) -> None:
        """Wait for the checkpoint being written, if any."""
        pending = self._pending
        if pending is not None:
            pending.result()

    def ping(self) -> int:
        return self.shard

    def pid(self) -> int:
        """The process holding this actor (for operators and fault tests)."""
        return os.getpid()
