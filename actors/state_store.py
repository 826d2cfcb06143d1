"""Where shard state lives between restarts: a snapshot plus an append-only log per shard.

`StateStore` is the small protocol; `SqliteStore` is the embedded default (one file per
shard, no server), `RedisStore` serves clusters where actors move between nodes, and
`MemoryStore` is for tests and throwaway runs. Each has its own config class (`StoreConfig`
is their union, chosen by `backend`), which opens it. A shard appends each request to its log
before applying it (write-ahead), so whatever a client was answered is in the store; on
restart it loads the snapshot and replays the log through the same code.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag


class StoreUnavailable(RuntimeError):
    """The store could not make a write durable; nothing was applied."""


class StateStore(Protocol):
    def load(self, shard: str) -> tuple[bytes | None, int, list[tuple[int, bytes]]]:
        """(snapshot or None, the last sequence it covers, log records after it in order)."""
        ...

    def append(self, shard: str, seq: int, record: bytes) -> None:
        """Make one record durable; raise `StoreUnavailable` if it cannot."""
        ...

    def snapshot(self, shard: str, seq: int, data: bytes) -> None:
        """Store a snapshot covering records up to `seq` and drop those records, atomically."""
        ...


class IdKeyMismatch(RuntimeError):
    """The store holds state keyed by another id key than the service's."""


ID_KEY_RECORD = "id-key"


def bind_id_key(store: StateStore, key_id: str) -> None:
    """Record which id key the state in `store` is keyed by, or refuse a store keyed by
    another: under a different key every card would look new, and lists would match nothing.
    `key_id` is a fingerprint (`IdHasher.key_id`), never the key."""
    found, _, _ = store.load(ID_KEY_RECORD)
    if found is None:
        store.snapshot(ID_KEY_RECORD, 0, key_id.encode())
    elif found.decode(errors="replace") != key_id:
        raise IdKeyMismatch(
            f"id_key: this state store was keyed by id key {found.decode(errors='replace')}, "
            f"the service has {key_id}. Give it the key the state was written with, or start "
            "on new state after a rotation (docs/security.md, 'Rotating the id key')."
        )


class _StoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    snapshot_every: int = Field(2_000, ge=1, description="Requests between snapshots.")


class SqliteStoreConfig(_StoreSettings):
    """`state: {backend: sqlite}`: one SQLite file per shard (embedded, one machine)."""

    backend: Literal["sqlite"] = "sqlite"
    path: str = "data/state"  # a directory, relative to the repository root
    fsync: bool = Field(False, description="fsync each commit (power-loss safe).")

    def open(self, repo_root: Path) -> StateStore:
        path = Path(self.path)
        return SqliteStore(path if path.is_absolute() else repo_root / path, self.fsync)


class RedisStoreConfig(_StoreSettings):
    """`state: {backend: redis}`: keys in one Redis (clusters: actors move between nodes)."""

    backend: Literal["redis"] = "redis"
    redis_url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "fraud"

    def open(self, repo_root: Path) -> StateStore:
        return RedisStore(self.redis_url, self.prefix)


class MemoryStoreConfig(_StoreSettings):
    """`state: {backend: memory}`: nothing survives the process (tests, throwaway runs)."""

    backend: Literal["memory"] = "memory"

    def open(self, repo_root: Path) -> StateStore:
        return MemoryStore()


def _backend(value: Any) -> str:
    """The union's tag: `backend`, sqlite when left out."""
    if isinstance(value, dict):
        return str(value.get("backend", "sqlite"))
    return str(getattr(value, "backend", "sqlite"))


# `state:` in serve_config.yaml: one config class per backend, chosen by `backend`.
StoreConfig = Annotated[
    Annotated[SqliteStoreConfig, Tag("sqlite")]
    | Annotated[RedisStoreConfig, Tag("redis")]
    | Annotated[MemoryStoreConfig, Tag("memory")],
    Discriminator(_backend),
]


class MemoryStore:
    """Process-local store: survives nothing; the default for unit tests."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes | None, int, list[tuple[int, bytes]]]] = {}
        self._lock = threading.Lock()

    def load(self, shard: str) -> tuple[bytes | None, int, list[tuple[int, bytes]]]:
        snap, seq, log = self._data.get(shard, (None, 0, []))
        return snap, seq, list(log)

    def append(self, shard: str, seq: int, record: bytes) -> None:
        with self._lock:
            snap, s, log = self._data.get(shard, (None, 0, []))
            self._data[shard] = (snap, s, [*log, (seq, record)])

    def snapshot(self, shard: str, seq: int, data: bytes) -> None:
        with self._lock:
            _, _, log = self._data.get(shard, (None, 0, []))
            self._data[shard] = (data, seq, [(s, r) for s, r in log if s > seq])


class SqliteStore:
    """One SQLite file per shard in WAL mode: durable against a killed process by default,
    against power loss with `fsync`."""

    def __init__(self, directory: str | Path, fsync: bool = False) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._conns: dict[str, sqlite3.Connection] = {}

    def _conn(self, shard: str) -> sqlite3.Connection:
        conn = self._conns.get(shard)
        if conn is None:
            safe = shard.replace(":", "_").replace("/", "_")
            # Any thread may write (a shard takes requests from Ray and from its socket);
            # the shard's lock makes the writes one at a time.
            conn = sqlite3.connect(
                self.directory / f"{safe}.sqlite", isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
            conn.execute("CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, data BLOB)")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 0),"
                " seq INTEGER, data BLOB)"
            )
            self._conns[shard] = conn
        return conn

    def load(self, shard: str) -> tuple[bytes | None, int, list[tuple[int, bytes]]]:
        conn = self._conn(shard)
        row = conn.execute("SELECT seq, data FROM snapshot WHERE id = 0").fetchone()
        snap, seq = (row[1], row[0]) if row else (None, 0)
        log = conn.execute("SELECT seq, data FROM log WHERE seq > ? ORDER BY seq", (seq,))
        return snap, seq, [(s, bytes(d)) for s, d in log.fetchall()]

    def append(self, shard: str, seq: int, record: bytes) -> None:
        try:
            self._conn(shard).execute("INSERT INTO log (seq, data) VALUES (?, ?)", (seq, record))
        except sqlite3.Error as e:
            raise StoreUnavailable(f"sqlite append failed: {e}") from e

    def snapshot(self, shard: str, seq: int, data: bytes) -> None:
        conn = self._conn(shard)
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT OR REPLACE INTO snapshot (id, seq, data) VALUES (0, ?, ?)", (seq, data)
            )
            conn.execute("DELETE FROM log WHERE seq <= ?", (seq,))
            conn.execute("COMMIT")
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise


class RedisStore:
    """Per-shard keys `<prefix>:<shard>:snapshot` (seq, data) and `<prefix>:<shard>:log` (a list
    of 8-byte seq + record). A snapshot replaces the old one and clears the log in one
    MULTI/EXEC. Durability is Redis's: run it with `appendonly yes` (AOF) and `appendfsync
    everysec` or `always` for state that must survive a Redis restart."""

    def __init__(self, url: str, prefix: str = "fraud") -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.prefix = prefix

    def _keys(self, shard: str) -> tuple[str, str]:
        return f"{self.prefix}:{shard}:snapshot", f"{self.prefix}:{shard}:log"

    def load(self, shard: str) -> tuple[bytes | None, int, list[tuple[int, bytes]]]:
        snap_key, log_key = self._keys(shard)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hgetall(snap_key)
        pipe.lrange(log_key, 0, -1)
        snap, log = pipe.execute()
        seq = int(snap[b"seq"]) if snap else 0
        records = [(int.from_bytes(r[:8], "big"), r[8:]) for r in log]
        return (snap.get(b"data") if snap else None), seq, [(s, r) for s, r in records if s > seq]

    def append(self, shard: str, seq: int, record: bytes) -> None:
        import redis

        try:
            self._redis.rpush(self._keys(shard)[1], seq.to_bytes(8, "big") + record)
        except redis.RedisError as e:
            raise StoreUnavailable(f"redis append failed: {e}") from e

    def snapshot(self, shard: str, seq: int, data: bytes) -> None:
        snap_key, log_key = self._keys(shard)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(snap_key, mapping={"seq": seq, "data": data})
        pipe.delete(log_key)  # the shard appends nothing while it snapshots
        pipe.execute()

    def delete(self, shard: str) -> None:
        self._redis.delete(*self._keys(shard))
