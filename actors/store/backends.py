"""Where shard state lives between restarts: checkpoints plus an append-only log per actor.

`StateStore` is the small protocol; `SqliteStore` is the embedded default (files per actor,
no server), `RedisStore` serves clusters where actors move between nodes, and `MemoryStore`
is for tests and throwaway runs. Each has its own config class (`StoreConfig` is their
union, chosen by `backend`), which opens it. An actor appends each request to its log before
applying it (write-ahead), so whatever a client was answered is in the store; a checkpoint
(full, or the changes since the last one) lets it drop the records it covers; on restart it
loads the checkpoints and replays the log after them through the same code. The bytes are
`actors.store.records`' format: the store neither reads nor pickles them.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Protocol, cast

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from actors.store.records import RETIRED_PICKLE, RecordFormatError

log = logging.getLogger(__name__)


class StoreUnavailable(RuntimeError):
    """The store could not make a write durable; nothing was applied."""


class Fenced(StoreUnavailable):
    """A write from an incarnation of an actor that a newer one has replaced (`fence`):
    refused, so a writer cut off from the cluster and replaced meanwhile (its writes
    delivered late, after a partition heals) never overwrites its successor's."""


class Stored(NamedTuple):
    """What a store holds for one actor, as `load` returns it."""

    base: bytes | None  # the last full checkpoint
    base_seq: int  # the last record it covers (0 without one)
    deltas: list[tuple[int, bytes]]  # incremental checkpoints after it: (last seq, data)
    log: list[tuple[int, bytes]]  # records after the last checkpoint, in order

    @property
    def seq(self) -> int:
        """The last record the checkpoints cover."""
        return self.deltas[-1][0] if self.deltas else self.base_seq


class StateStore(Protocol):
    """An actor's journal and checkpoints. `append` is called by the actor's request path;
    `checkpoint` and `checkpoints` by its checkpoint writer, a thread of its own, at the
    same time: a backend keeps the two apart, and a checkpoint never blocks an append for
    longer than it takes to drop the records it covers."""

    # An append returns in tens of microseconds (no network, no disk flush): a caller on
    # an event loop may make it there instead of paying a hop to a thread and back.
    quick_appends: bool

    def load(self, shard: str) -> Stored:
        """Everything held, for a (re)start: checkpoints, then the log after them."""
        ...

    def checkpoints(self, shard: str) -> Stored:
        """The checkpoints alone (`log` empty), for compacting them."""
        ...

    def fence(self, shard: str) -> int:
        """Begin a new incarnation of `shard`'s writer: returns its epoch, larger than any
        before; writes that name an older epoch are refused (`Fenced`) from now on."""
        ...

    def append(self, shard: str, seq: int, record: bytes, epoch: int | None = None) -> None:
        """Make one record durable; raise `StoreUnavailable` if it cannot, `Fenced` if
        `epoch` is not the current one (None: a writer that is alone by construction). A
        record stored again under the same `seq` (a retried write) replaces the first."""
        ...

    def checkpoint(
        self, shard: str, seq: int, data: bytes, full: bool, epoch: int | None = None
    ) -> None:
        """Store a checkpoint covering records up to `seq`, then drop those records. A full
        one replaces every checkpoint before it; an incremental one (`full=False`) holds the
        changes since the previous checkpoint. Raise `StoreUnavailable` if it cannot,
        `Fenced` as `append`."""
        ...

    def delete(self, shard: str) -> None:
        """Drop everything held for `shard` (its state moved to other shards)."""
        ...

    def names(self, prefix: str) -> list[str]:
        """The actors whose name starts with `prefix` that hold records here (one whose
        records a checkpoint covers may be left out)."""
        ...

    def archive(self, name: str, entries: list[tuple[str, int, bytes]]) -> None:
        """Keep (key, event time in ms, value) entries in the archive `name` (one per
        writer, so writers never wait on each other) for `archived`; an entry stored again
        replaces the first. Raise `StoreUnavailable` if it cannot."""
        ...

    def archived(self, name: str, keys: list[tuple[str, int]]) -> list[bytes | None]:
        """The values of these (key, event time in ms) entries, None where none is held."""
        ...

    def archive_names(self, prefix: str) -> list[str]:
        """The archives whose name starts with `prefix` (every layout's, until expired)."""
        ...

    def expire_archive(self, name: str, before_ms: int) -> None:
        """Drop the entries older than `before_ms` (by whole days: an entry may stay up to a
        day longer)."""
        ...


MS_PER_DAY = 86_400_000


def _day(time_ms: int) -> int:
    """An archive entry's bucket: the day of its event time."""
    return time_ms // MS_PER_DAY


def _after(log: list[tuple[int, bytes]], seq: int) -> list[tuple[int, bytes]]:
    """Records after `seq` in order, the last write of each sequence number kept."""
    latest = dict(log)  # a retried append's second write wins
    return sorted(((s, r) for s, r in latest.items() if s > seq), key=lambda x: x[0])


def _stored(checkpoints: list[tuple[int, bool, bytes]], log: list[tuple[int, bytes]]) -> Stored:
    """`Stored` from (seq, full, data) rows in order of seq, and the raw log."""
    fulls = [i for i, (_, full, _) in enumerate(checkpoints) if full]
    first = fulls[-1] if fulls else 0
    base, base_seq = (checkpoints[first][2], checkpoints[first][0]) if fulls else (None, 0)
    deltas = [(s, d) for s, full, d in checkpoints[first:] if not full]
    stored = Stored(base, base_seq, deltas, [])
    return stored._replace(log=_after(log, stored.seq))


class IdKeyMismatch(RuntimeError):
    """The store holds state keyed by another id key than the service's."""


ID_KEY_RECORD = "id-key"


def bind_id_key(store: StateStore, key_id: str) -> None:
    """Record which id key the state in `store` is keyed by, or refuse a store keyed by
    another: under a different key every card would look new, and lists would match nothing.
    `key_id` is a fingerprint (`IdHasher.key_id`), never the key."""
    found = store.load(ID_KEY_RECORD).base
    if found is None:
        store.checkpoint(ID_KEY_RECORD, 0, key_id.encode(), full=True)
    elif found.decode(errors="replace") != key_id:
        raise IdKeyMismatch(
            f"id_key: this state store was keyed by id key {found.decode(errors='replace')}, "
            f"the service has {key_id}. Give it the key the state was written with, or start "
            "on new state after a rotation (docs/security.md, 'Rotating the id key')."
        )


class _StoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    snapshot_every: int = Field(2_000, ge=1, description="Requests between checkpoints.")
    snapshot_rows: int = Field(
        20_000,
        ge=1,
        description="Transactions between checkpoints, a batch counting its rows: history "
        "replayed in batches is checkpointed as it goes, not all at once later.",
    )
    compact_every: int = Field(
        16, ge=1, description="Incremental checkpoints folded into a full one after this many."
    )


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

    quick_appends = True

    def __init__(self) -> None:
        self._checkpoints: dict[str, list[tuple[int, bool, bytes]]] = {}
        self._log: dict[str, list[tuple[int, bytes]]] = {}
        self._archive: dict[str, dict[str, tuple[int, bytes]]] = {}  # name -> key -> (day, value)
        self._epochs: dict[str, int] = {}
        self._lock = threading.Lock()

    def fence(self, shard: str) -> int:
        with self._lock:
            self._epochs[shard] = self._epochs.get(shard, 0) + 1
            return self._epochs[shard]

    def _check(self, shard: str, epoch: int | None) -> None:
        if epoch is not None and epoch != self._epochs.get(shard, 0):
            raise Fenced(f"{shard}: epoch {epoch} replaced")

    def load(self, shard: str) -> Stored:
        with self._lock:
            return _stored(list(self._checkpoints.get(shard, [])), list(self._log.get(shard, [])))

    def checkpoints(self, shard: str) -> Stored:
        with self._lock:
            return _stored(list(self._checkpoints.get(shard, [])), [])

    def append(self, shard: str, seq: int, record: bytes, epoch: int | None = None) -> None:
        with self._lock:
            self._check(shard, epoch)
            self._log.setdefault(shard, []).append((seq, record))

    def names(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(k for k in self._log if k.startswith(prefix))

    def checkpoint(
        self, shard: str, seq: int, data: bytes, full: bool, epoch: int | None = None
    ) -> None:
        with self._lock:
            self._check(shard, epoch)
            kept = [] if full else self._checkpoints.get(shard, [])
            self._checkpoints[shard] = [*kept, (seq, full, data)]
            self._log[shard] = [(s, r) for s, r in self._log.get(shard, []) if s > seq]

    def delete(self, shard: str) -> None:
        with self._lock:
            self._checkpoints.pop(shard, None)
            self._log.pop(shard, None)

    def archive(self, name: str, entries: list[tuple[str, int, bytes]]) -> None:
        with self._lock:
            held = self._archive.setdefault(name, {})
            held.update((key, (_day(time), value)) for key, time, value in entries)

    def archived(self, name: str, keys: list[tuple[str, int]]) -> list[bytes | None]:
        with self._lock:
            held = self._archive.get(name, {})
            return [held[key][1] if key in held else None for key, _ in keys]

    def archive_names(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(n for n in self._archive if n.startswith(prefix))

    def expire_archive(self, name: str, before_ms: int) -> None:
        with self._lock:
            held = self._archive.get(name, {})
            for key in [k for k, (day, _) in held.items() if day < _day(before_ms)]:
                del held[key]


SQLITE_PART_BYTES = 64 << 20


@contextlib.contextmanager
def _written(connect: Callable[[], sqlite3.Connection], what: str) -> Iterator[sqlite3.Connection]:
    """One write transaction (committed, or rolled back on an error); whatever SQLite
    refuses, opening included, is `StoreUnavailable` naming `what`."""
    try:
        conn = connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as e:
        raise StoreUnavailable(f"sqlite {what} failed: {e}") from e


class SqliteStore:
    """Two SQLite files per actor in WAL mode, the log and the checkpoints, so writing a
    checkpoint never holds the log's write lock; durable against a killed process by
    default, against power loss with `fsync`."""

    def __init__(self, directory: str | Path, fsync: bool = False) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.quick_appends = not fsync  # a WAL append without fsync: ~20 us
        # One connection per (file, thread): the request path and the checkpoint writer
        # each use their own. Only the request path writes the log: a checkpoint leaves the
        # records it covers for the next append to drop, in that append's transaction, so
        # no append ever waits on another connection's lock (SQLite's busy wait sleeps in
        # steps of up to 25 ms).
        self._local = threading.local()
        self._trim: dict[str, int] = {}
        self._trim_lock = threading.Lock()

    def _conn(self, shard: str, part: str) -> sqlite3.Connection:
        conns: dict[tuple[str, str], sqlite3.Connection] = self._local.__dict__.setdefault(
            "conns", {}
        )
        conn = conns.get((shard, part))
        if conn is None:
            safe = shard.replace(":", "_").replace("/", "_")
            name = f"{safe}.sqlite" if part == "log" else f"{safe}.{part}.sqlite"
            conn = sqlite3.connect(self.directory / name, isolation_level=None, timeout=30.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
            if part == "log":
                conn.execute("CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, data BLOB)")
                conn.execute("CREATE TABLE IF NOT EXISTS fence (epoch INTEGER NOT NULL)")
                self._refuse_pickled_snapshot(conn)
            elif part == "archive":
                pass  # a table per day of event time, made by its first write
            else:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS checkpoint (seq INTEGER, part INTEGER,"
                    " full INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (seq, part))"
                )
            conns[(shard, part)] = conn
        return conn

    def names(self, prefix: str) -> list[str]:
        return sorted(
            p.name.removesuffix(".sqlite")
            for p in self.directory.glob(f"{prefix}*.sqlite")
            if "." not in p.name.removesuffix(".sqlite")
        )

    @staticmethod
    def _refuse_pickled_snapshot(conn: sqlite3.Connection) -> None:
        """Files of the retired format kept their snapshot beside the log."""
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'snapshot'"
        ).fetchone()
        if found:
            raise RecordFormatError(RETIRED_PICKLE)

    def _checkpoint_rows(self, shard: str) -> list[tuple[int, bool, bytes]]:
        rows = self._conn(shard, "checkpoints").execute(
            "SELECT seq, full, data FROM checkpoint ORDER BY seq, part"
        )
        parts: dict[tuple[int, bool], list[bytes]] = {}
        for s, f, d in rows.fetchall():
            parts.setdefault((s, bool(f)), []).append(d)
        return [(s, f, b"".join(chunks)) for (s, f), chunks in parts.items()]

    def load(self, shard: str) -> Stored:
        checkpoints = self._checkpoint_rows(shard)
        log = self._conn(shard, "log").execute("SELECT seq, data FROM log ORDER BY seq")
        return _stored(checkpoints, [(s, bytes(d)) for s, d in log.fetchall()])

    def checkpoints(self, shard: str) -> Stored:
        return _stored(self._checkpoint_rows(shard), [])

    def fence(self, shard: str) -> int:
        with _written(lambda: self._conn(shard, "log"), "fence") as conn:
            row = conn.execute("SELECT MAX(epoch) FROM fence").fetchone()
            epoch = int(row[0] or 0) + 1
            conn.execute("DELETE FROM fence")
            conn.execute("INSERT INTO fence (epoch) VALUES (?)", (epoch,))
        return epoch

    def _current(self, conn: sqlite3.Connection, shard: str, epoch: int | None) -> None:
        if epoch is None:
            return
        row = conn.execute("SELECT MAX(epoch) FROM fence").fetchone()
        if int(row[0] or 0) != epoch:
            raise Fenced(f"{shard}: epoch {epoch} replaced")

    def append(self, shard: str, seq: int, record: bytes, epoch: int | None = None) -> None:
        with self._trim_lock:
            covered = self._trim.pop(shard, None)
        conn = self._conn(shard, "log")
        insert = "INSERT OR REPLACE INTO log (seq, data) VALUES (?, ?)"
        fenced = (
            "INSERT OR REPLACE INTO log (seq, data) SELECT ?, ?"
            " WHERE (SELECT MAX(epoch) FROM fence) = ?"
        )
        try:
            if covered is None:  # one statement: the epoch checked in it
                if epoch is None:
                    conn.execute(insert, (seq, record))
                elif conn.execute(fenced, (seq, record, epoch)).rowcount != 1:
                    raise Fenced(f"{shard}: epoch {epoch} replaced")
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._current(conn, shard, epoch)
                conn.execute("DELETE FROM log WHERE seq <= ?", (covered,))
                conn.execute(insert, (seq, record))
                conn.execute("COMMIT")
            except (sqlite3.Error, Fenced):
                conn.execute("ROLLBACK")
                with self._trim_lock:
                    self._trim[shard] = max(self._trim.get(shard, 0), covered)
                raise
        except sqlite3.Error as e:
            raise StoreUnavailable(f"sqlite append failed: {e}") from e

    def checkpoint(
        self, shard: str, seq: int, data: bytes, full: bool, epoch: int | None = None
    ) -> None:
        # The fence lives in the log's file: checked there, then the checkpoint written (one
        # machine: a replaced writer died with its process, so nothing runs between the two).
        try:
            self._current(self._conn(shard, "log"), shard, epoch)
        except sqlite3.Error as e:
            raise StoreUnavailable(f"sqlite checkpoint failed: {e}") from e
        with _written(lambda: self._conn(shard, "checkpoints"), "checkpoint") as conn:
            conn.execute(f"DELETE FROM checkpoint WHERE seq {'<=' if full else '='} ?", (seq,))
            view = memoryview(data)  # in parts: SQLite's blobs stop at 1 GB
            for part, at in enumerate(range(0, max(len(data), 1), SQLITE_PART_BYTES)):
                conn.execute(
                    "INSERT INTO checkpoint (seq, part, full, data) VALUES (?, ?, ?, ?)",
                    (seq, part, int(full), view[at : at + SQLITE_PART_BYTES]),
                )
        # Only now are the records redundant: the next append drops them. Until then (or
        # after a crash) `load` skips what a checkpoint covers.
        with self._trim_lock:
            self._trim[shard] = max(self._trim.get(shard, 0), seq)

    def delete(self, shard: str) -> None:
        with self._trim_lock:
            self._trim.pop(shard, None)
        try:
            self._conn(shard, "checkpoints").execute("DELETE FROM checkpoint")
            self._conn(shard, "log").execute("DELETE FROM log")
        except sqlite3.Error as e:
            raise StoreUnavailable(f"sqlite delete failed: {e}") from e

    # An archive is a file of its own (`<name>.archive.sqlite`), written by one shard's
    # checkpoint writer and read on a request path only for an old transaction. It holds a
    # table per day of event time (`d<day>`, keyed by the entry's key, no rowid): a write
    # goes into one day's tree, a read knows the day (a retry carries its original's time),
    # and expiry drops whole days. One table with a day column made expiry a row-by-row
    # delete that cost the terminal shard a fifth of its CPU (BENCHMARKS.md, "Where the CPU
    # goes, 2026-12-04"); files of that form are read and expired as before.
    def archive(self, name: str, entries: list[tuple[str, int, bytes]]) -> None:
        by_day: dict[int, list[tuple[str, bytes]]] = {}
        for key, time, value in entries:
            by_day.setdefault(_day(time), []).append((key, value))
        with _written(lambda: self._conn(name, "archive"), "archive") as conn:
            for day, rows in by_day.items():
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS d{int(day)} "
                    "(key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"
                )
                conn.executemany(f"INSERT OR REPLACE INTO d{int(day)} VALUES (?, ?)", rows)

    @staticmethod
    def _archive_tables(conn: sqlite3.Connection) -> set[str]:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {str(r[0]) for r in rows}

    def archived(self, name: str, keys: list[tuple[str, int]]) -> list[bytes | None]:
        conn = self._conn(name, "archive")
        found: dict[str, bytes] = {}
        by_table: dict[str, list[str]] = {}
        try:
            tables = self._archive_tables(conn)
            for key, time in keys:
                day = f"d{int(_day(time))}"
                if day in tables:
                    by_table.setdefault(day, []).append(key)
                if "archive" in tables:  # the one-table form
                    by_table.setdefault("archive", []).append(key)
            for table, names in by_table.items():
                for at in range(0, len(names), 500):  # SQLite's limit on bound parameters
                    part = names[at : at + 500]
                    marks = ",".join("?" * len(part))
                    rows = conn.execute(
                        f"SELECT key, value FROM {table} WHERE key IN ({marks})", part
                    )
                    found.update((k, bytes(v)) for k, v in rows.fetchall())
        except sqlite3.Error as e:
            raise StoreUnavailable(f"sqlite archive read failed: {e}") from e
        return [found.get(key) for key, _ in keys]

    def archive_names(self, prefix: str) -> list[str]:
        tail = ".archive.sqlite"
        return sorted(p.name.removesuffix(tail) for p in self.directory.glob(f"{prefix}*{tail}"))

    def expire_archive(self, name: str, before_ms: int) -> None:
        first = _day(before_ms)
        try:
            conn = self._conn(name, "archive")
            tables = self._archive_tables(conn)
            for table in sorted(tables):
                if table[:1] == "d" and table[1:].lstrip("-").isdigit() and int(table[1:]) < first:
                    conn.execute(f"DROP TABLE IF EXISTS {table}")  # another may have
            if "archive" in tables:  # the one-table form
                conn.execute("DELETE FROM archive WHERE day < ?", (first,))
        except sqlite3.Error as e:
            raise StoreUnavailable(f"sqlite archive expiry failed: {e}") from e


# Each script first checks the writer's epoch (ARGV's last, "" for none) against the actor's
# `epoch` key (KEYS[2]): a replaced writer's command, delivered late, changes nothing.
_FENCE = """
local epoch = ARGV[#ARGV]
if epoch ~= '' and tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(epoch) then
  return -1
end
"""
# Append ARGV[1] to the log.
_APPEND = (
    _FENCE
    + """
redis.call('RPUSH', KEYS[1], ARGV[1])
return 1
"""
)
# The checkpoint index: drop members ARGV[3..] (and their bodies, KEYS[3] .. member), then
# add ARGV[1] at score ARGV[2].
_INDEX = (
    _FENCE
    + """
for i = 3, #ARGV - 1 do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('DEL', KEYS[3] .. ARGV[i])
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"""
)
# Drop the log's records up to ARGV[1] (each starts with its 8-byte big-endian seq), from
# the head: appends only ever add at the tail, so this is exact whatever was retried.
_TRIM = (
    _FENCE
    + """
local n = 0
while true do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head then break end
  local seq = 0
  for i = 1, 8 do seq = seq * 256 + string.byte(head, i) end
  if seq > tonumber(ARGV[1]) then break end
  redis.call('LPOP', KEYS[1])
  n = n + 1
end
return n
"""
)
CHUNK_BYTES = 1 << 20  # one Redis command per MiB of checkpoint: others' commands interleave


def _epoch(epoch: int | None) -> str | int:
    return "" if epoch is None else epoch


class RedisStore:
    """Per-actor keys under `<prefix>:<shard>:`: `log`, a list of 8-byte seq + record;
    `checkpoints`, a sorted set of `<seq>:<full|delta>` by seq; and `checkpoint:<seq>`, each
    checkpoint's bytes as a list of 1 MiB chunks, written a chunk per command so a large
    checkpoint never blocks Redis for the other shards. Durability is Redis's: run it with
    `appendonly yes` (AOF) and `appendfsync everysec` or `always` for state that must survive
    a Redis restart."""

    quick_appends = False  # a network round trip

    def __init__(self, url: str, prefix: str = "fraud") -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=2.0)
        self.prefix = prefix
        self._trim = self._redis.register_script(_TRIM)
        self._append = self._redis.register_script(_APPEND)
        self._index = self._redis.register_script(_INDEX)

    def fence(self, shard: str) -> int:
        import redis

        try:
            return int(self._redis.incr(self._key(shard, "epoch")))
        except redis.RedisError as e:
            raise StoreUnavailable(f"redis fence failed: {e}") from e

    def _key(self, shard: str, part: str) -> str:
        return f"{self.prefix}:{shard}:{part}"

    def names(self, prefix: str) -> list[str]:
        import redis

        head, tail = f"{self.prefix}:", ":log"
        try:
            found = self._redis.scan_iter(match=f"{head}{prefix}*{tail}", count=1000)
            return sorted(k.decode()[len(head) : -len(tail)] for k in found)
        except redis.RedisError as e:
            raise StoreUnavailable(f"redis: {type(e).__name__}") from e

    def _members(
        self, shard: str, low: float | str = "-inf", high: float | str = "+inf"
    ) -> list[str]:
        """The checkpoints' index entries, `<seq>:<full|delta>:<id>`, in order of seq."""
        found = cast(
            list[bytes], self._redis.zrangebyscore(self._key(shard, "checkpoints"), low, high)
        )
        return [m.decode() for m in found]

    def _body(self, shard: str, member: str) -> str:
        return self._key(shard, f"checkpoint:{member}")

    def _checkpoint_rows(self, shard: str) -> list[tuple[int, bool, bytes]]:
        if self._redis.exists(self._key(shard, "snapshot")):  # the retired format's layout
            raise RecordFormatError(RETIRED_PICKLE)
        rows = []
        for member in self._members(shard):
            seq, kind, _ = member.split(":")
            chunks = cast(list[bytes], self._redis.lrange(self._body(shard, member), 0, -1))
            rows.append((int(seq), kind == "full", b"".join(chunks)))
        return rows

    def load(self, shard: str) -> Stored:
        import redis

        try:
            checkpoints = self._checkpoint_rows(shard)
            log = cast(list[bytes], self._redis.lrange(self._key(shard, "log"), 0, -1))
        except redis.RedisError as e:
            raise StoreUnavailable(f"redis load failed: {e}") from e
        return _stored(checkpoints, [(int.from_bytes(r[:8], "big"), r[8:]) for r in log])

    def checkpoints(self, shard: str) -> Stored:
        return _stored(self._checkpoint_rows(shard), [])

    def append(self, shard: str, seq: int, record: bytes, epoch: int | None = None) -> None:
        import redis

        row = seq.to_bytes(8, "big") + record
        try:
            if epoch is None:
                self._redis.rpush(self._key(shard, "log"), row)
                return
            keys = [self._key(shard, "log"), self._key(shard, "epoch")]
            done = self._append(keys=keys, args=[row, epoch])
        except redis.RedisError as e:
            raise StoreUnavailable(f"redis append failed: {e}") from e
        if done == -1:
            raise Fenced(f"{shard}: epoch {epoch} replaced")

    def checkpoint(
        self, shard: str, seq: int, data: bytes, full: bool, epoch: int | None = None
    ) -> None:
        import redis

        index = self._key(shard, "checkpoints")
        member = f"{seq}:{'full' if full else 'delta'}:{uuid.uuid4().hex[:12]}"
        body = self._body(shard, member)
        try:
            for at in range(0, max(len(data), 1), CHUNK_BYTES):
                self._redis.rpush(body, data[at : at + CHUNK_BYTES])
            # A full checkpoint replaces those before it; either replaces one at its seq.
            replaced = self._members(shard, "-inf" if full else seq, seq)
            keys = [index, self._key(shard, "epoch"), self._key(shard, "checkpoint:")]
            done = self._index(keys=keys, args=[member, seq, *replaced, _epoch(epoch)])
        except redis.RedisError as e:
            with contextlib.suppress(redis.RedisError):  # no half-written body left behind
                self._redis.delete(body)
            raise StoreUnavailable(f"redis checkpoint failed: {e}") from e
        if done == -1:
            with contextlib.suppress(redis.RedisError):
                self._redis.delete(body)
            raise Fenced(f"{shard}: epoch {epoch} replaced")
        try:
            keys = [self._key(shard, "log"), self._key(shard, "epoch")]
            self._trim(keys=keys, args=[seq, _epoch(epoch)])
        except redis.RedisError as e:
            # The checkpoint stands: `load` skips the records it covers, and the next
            # checkpoint's trim drops them.
            log.warning("%s: log trim after checkpoint %d failed: %s", shard, seq, e)

    # An archive: a hash per day of event time (`<prefix>:archive:<name>:<day>`), a set of
    # the days held (expiry drops whole days), and the names in `<prefix>:archives`.
    def _archive_key(self, name: str, day: int | str) -> str:
        return f"{self.prefix}:archive:{name}:{day}"

    def archive(self, name: str, entries: list[tuple[str, int, bytes]]) -> None:
        import redis

        days: dict[int, dict[str, bytes]] = {}
        for key, time, value in entries:
            days.setdefault(_day(time), {})[key] = value
        try:
            pipe = self._redis.pipeline(transaction=False)
            for day, mapping in days.items():
                pipe.hset(self._archive_key(name, day), mapping=mapping)  # type: ignore[arg-type]
            if days:
                pipe.sadd(self._archive_key(name, "days"), *days)
                pipe.sadd(f"{self.prefix}:archives", name)
            pipe.execute()
        except redis.RedisError as e:
            raise StoreUnavailable(f"redis archive failed: {type(e).__name__}") from e

    def archived(self, name: str, keys: list[tuple[str, int]]) -> list[bytes | None]:
        import redis

        by_day: dict[int, list[int]] = {}
        for i, (_, time) in enumerate(keys):
            by_day.setdefault(_day(time), []).append(i)
        out: list[bytes | None] = [None] * len(keys)
        try:
            pipe = self._redis.pipeline(transaction=False)
            for day, rows in by_day.items():
                pipe.hmget(self._archive_key(name, day), [keys[i][0] for i in rows])
            for rows, values in zip(by_day.values(), pipe.execute(), strict=True):
                for i, value in zip(rows, values, strict=True):
                    out[i] = value
        except redis.RedisError as e:
            raise StoreUnavailable(f"redis archive read failed: {type(e).__name__}") from e
        return out

    def archive_names(self, prefix: str) -> list[str]:
        import redis

        try:
            held = cast(set[bytes], self._redis.smembers(f"{self.prefix}:archives"))
        except redis.RedisError as e:
            raise StoreUnavailable(f"redis: {type(e).__name__}") from e
        return sorted(n for n in (m.decode() for m in held) if n.startswith(prefix))

    def expire_archive(self, name: str, before_ms: int) -> None:
        import redis

        try:
            index = self._archive_key(name, "days")
            held = cast(set[bytes], self._redis.smembers(index))
            old = [int(d) for d in held if int(d) < _day(before_ms)]
            if old:
                self._redis.delete(*(self._archive_key(name, d) for d in old))
                self._redis.srem(index, *old)
        except redis.RedisError as e:
            raise StoreUnavailable(f"redis archive expiry failed: {type(e).__name__}") from e

    def delete(self, shard: str) -> None:
        bodies = [self._body(shard, m) for m in self._members(shard)]
        self._redis.delete(
            self._key(shard, "checkpoints"), self._key(shard, "log"), self._key(shard, "snapshot"),
            *bodies,
        )  # fmt: skip
