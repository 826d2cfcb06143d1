"""Write-ahead journaling, snapshots and recovery for a state-owning actor.

A subclass (a card shard, a terminal shard, the desk) provides four hooks and calls
`_submit(op)` for every change; this base makes the change durable in the `StateStore`
before applying it, snapshots every `snapshot_every` changes, and on start rebuilds the
state from the last snapshot plus the journal after it, through the same `_apply`.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from actors.state_store import MemoryStoreConfig, StateStore, StoreConfig
from actors.tls import WireTlsConfig
from features.config import EngineConfig

REPO_ROOT = Path(__file__).resolve().parent.parent


class DedupConfig(BaseModel):
    """`dedup:` in serve_config.yaml: how long and how many transaction ids are remembered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_hours: float = Field(24.0, gt=0, description="Event time behind the newest seen.")
    max_entries: int = Field(200_000, ge=1, description="Per shard.")


class ShardSettings(BaseModel):
    """What every journaled actor is built from (the app's `engine`, `state`, `dedup`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: EngineConfig = EngineConfig()
    state: StoreConfig = MemoryStoreConfig()
    dedup: DedupConfig = DedupConfig()
    wire_tls: WireTlsConfig | None = None


class Journaled(ABC):
    """The journaling base. A subclass sets `kind` and provides:

    - `_init_state()`: empty state (called before recovery);
    - `_apply(op)`: apply one journaled operation (a tuple) and return its answer; it must be
      deterministic, since recovery replays the journal through it;
    - `_dump()` / `_load(parts)`: the whole state as named byte strings, and back;
    - optionally `_warm()`: load what the first request would (compiled kernels).
    """

    kind: ClassVar[str] = "journaled"

    def __init__(
        self,
        shard: int,
        n_shards: int,
        settings: ShardSettings | dict[str, Any] | None,
        store: StateStore | None = None,
    ) -> None:
        self.shard, self.n_shards = shard, n_shards
        self.settings = (
            settings if isinstance(settings, ShardSettings) else ShardSettings(**(settings or {}))
        )
        self.name = f"{self.kind}-{shard}-of-{n_shards}"
        self.store: StateStore = store or self.settings.state.open(REPO_ROOT)
        self.seq = 0
        self.snapshot_seq = 0
        # Requests arrive as Ray calls and over the shard's socket (`actors.wire`): applied
        # one at a time either way.
        self._lock = threading.Lock()
        self._init_state()
        started = time.perf_counter()
        self.replayed = self._recover()
        self.recovery_seconds = time.perf_counter() - started
        self._warm()

    @abstractmethod
    def _init_state(self) -> None: ...

    @abstractmethod
    def _apply(self, op: tuple[Any, ...]) -> Any: ...

    @abstractmethod
    def _dump(self) -> dict[str, bytes]: ...

    @abstractmethod
    def _load(self, parts: dict[str, bytes]) -> None: ...

    def _warm(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Load what the first request would, so the first requests after a start or
        restart do not pay it."""

    def _recover(self) -> int:
        snapshot, seq, log = self.store.load(self.name)
        if snapshot is not None:
            self._load(pickle.loads(snapshot))
        self.seq = self.snapshot_seq = seq
        for s, record in log:
            self._apply(pickle.loads(record))
            self.seq = max(self.seq, s)
        return len(log)

    def _submit(self, op: tuple[Any, ...]) -> Any:
        """Journal, then apply: an answered request is always in the store."""
        with self._lock:
            seq = self.seq + 1
            self.store.append(self.name, seq, pickle.dumps(op, protocol=5))  # may raise
            self.seq = seq
            result = self._apply(op)
            if self.seq - self.snapshot_seq >= self.settings.state.snapshot_every:
                self.checkpoint()
            return result

    def checkpoint(self) -> None:
        """Snapshot the whole state and drop the journal it covers."""
        self.store.snapshot(self.name, self.seq, pickle.dumps(self._dump(), protocol=5))
        self.snapshot_seq = self.seq

    def ping(self) -> int:
        return self.shard

    def pid(self) -> int:
        """The process holding this actor (for operators and fault tests)."""
        return os.getpid()
