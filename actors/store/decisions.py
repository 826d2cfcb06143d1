"""The decision record: every decision a replica made, LEGIT included, as Parquet files
partitioned by the UTC day it was made (`day=YYYY-MM-DD/`), on any filesystem pyarrow
reaches (a local folder, `s3://...`, `gs://...`, HDFS).

Why Parquet on a filesystem and not the state store: a dispute or a chargeback arrives
months later, and model monitoring reads millions of rows at once; columnar files on
object storage hold that for cents and every analytics tool reads them, while the state
store holds what the answer path needs now. Rows carry ids only as the service stores them
everywhere (card numbers redacted, card and terminal ids as keyed digests).

Written by each deciding replica from its journal of decisions (`actors.client.recorder`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)
DAY: Final = "day"
_RANGE: Final = re.compile(r"(?P<journal>.+)-(?P<first>\d{12})-(?P<last>\d{12})\.parquet")
DAY_MS: Final = 86_400_000

SCHEMA: Final = pa.schema(
    [
        ("transaction_id", pa.string()),  # card numbers in it redacted
        ("decided_ms", pa.int64()),  # when the replica decided (wall clock, Unix ms)
        ("time_ms", pa.int64()),  # the transaction's own time
        ("amount", pa.float64()),
        ("score", pa.float64()),
        ("decision", pa.string()),  # LEGIT | REVIEW | BLOCK
        ("model_version", pa.string()),
        ("review_threshold", pa.float64()),
        ("block_threshold", pa.float64()),
        ("policy_version", pa.int64()),
        ("rules", pa.list_(pa.string())),  # the rules that fired
        ("reasons", pa.string()),  # JSON: the reason codes of a flagged row, else null
        ("degraded_reason", pa.string()),  # null unless answered without some state
        ("duplicate", pa.bool_()),  # a retry of a transaction already decided
        ("card", pa.string()),  # the card id's keyed digest
        ("terminal", pa.string()),  # the terminal id's keyed digest
        ("replica", pa.string()),
    ]
)


class DecisionRecordConfig(BaseModel):
    """`decision_record:` in the app's args."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str | None = Field(
        "data/decisions",
        description="Where the record lives: a folder (relative to the repository root), or "
        "a URI pyarrow opens (s3://bucket/prefix, gs://..., hdfs://...). Every replica of a "
        "cluster must reach the same one. null: no record.",
    )
    retain_days: int = Field(
        400, ge=1, le=36_500, description="Days a decision is kept (chargebacks: 120-540)."
    )
    flush_seconds: float = Field(
        5.0, gt=0, le=3600, description="How often a replica writes what it journaled."
    )
    max_buffered_rows: int = Field(
        1_000_000,
        ge=1_000,
        description="Rows a replica also holds in memory while the record's storage refuses "
        "writes; beyond that they are read back from its journal.",
    )

    def open(self, repo_root: Path) -> DecisionStore | None:
        return None if self.path is None else DecisionStore.at(self.path, repo_root)


class DecisionRecordError(RuntimeError):
    """The record could not be read or written (a filesystem error, named, never the data)."""


@dataclass(frozen=True)
class DecisionStore:
    """The record's root on one pyarrow filesystem."""

    fs: pafs.FileSystem
    root: str

    @classmethod
    def at(cls, path: str, repo_root: Path | None = None) -> DecisionStore:
        if "://" in path:
            fs, root = pafs.FileSystem.from_uri(path)
            return cls(fs, root.rstrip("/"))
        local = Path(path)
        if not local.is_absolute() and repo_root is not None:
            local = repo_root / local
        return cls(pafs.LocalFileSystem(), str(local.resolve()))

    # -- writing ------------------------------------------------------------------------------
    def write(self, table: pa.Table, name: str) -> list[str]:
        """One file per day the rows fall on; returns their paths. A file is written whole
        under a temporary name and then renamed, so a reader never sees half of one."""
        days = days_of(table.column("decided_ms").to_numpy())
        written = []
        for day in np.unique(days):
            part = table.filter(pa.array(days == day))
            folder = f"{self.root}/{DAY}={day_text(int(day))}"
            self.fs.create_dir(folder, recursive=True)
            final = f"{folder}/{name}.parquet"
            temp = f"{folder}/.{name}.parquet.tmp"
            pq.write_table(part, temp, filesystem=self.fs, compression="zstd")
            self.fs.move(temp, final)
            written.append(final)
        return written

    def expire(self, retain_days: int, now_ms: int | None = None) -> list[str]:
        """Delete the day partitions older than `retain_days`; returns the days deleted."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        oldest = day_text(int(days_of(np.array([now - retain_days * DAY_MS]))[0]))
        gone = []
        for day in self.days():
            if day < oldest:
                with contextlib.suppress(FileNotFoundError):  # another replica was first
                    self.fs.delete_dir(f"{self.root}/{DAY}={day}")
                gone.append(day)
        return gone

    # -- reading ------------------------------------------------------------------------------
    def days(self) -> list[str]:
        """The day partitions present, oldest first."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True))
        except OSError as e:
            raise DecisionRecordError(f"decision record unreadable: {type(e).__name__}") from e
        prefix = f"{DAY}="
        return sorted(
            i.base_name[len(prefix) :]
            for i in infos
            if i.type == pafs.FileType.Directory and i.base_name.startswith(prefix)
        )

    def read(
        self,
        since_ms: int | None = None,
        until_ms: int | None = None,
        transaction_id: str | None = None,
    ) -> pa.Table:
        """Decisions made in [since_ms, until_ms), or all; only `transaction_id`'s if named.
        Day partitions outside the range are not opened."""
        days = self.days()
        if since_ms is not None:
            days = [d for d in days if d >= day_text(int(days_of(np.array([since_ms]))[0]))]
        if until_ms is not None:
            days = [d for d in days if d <= day_text(int(days_of(np.array([until_ms - 1]))[0]))]
        files = [f for d in days for f in self._files(d)]
        if not files:
            return SCHEMA.empty_table()
        where: Any = None
        for term in (
            None if since_ms is None else ds.field("decided_ms") >= since_ms,
            None if until_ms is None else ds.field("decided_ms") < until_ms,
            None if transaction_id is None else ds.field("transaction_id") == transaction_id,
        ):
            if term is not None:
                where = term if where is None else where & term
        dataset = ds.dataset(files, schema=SCHEMA, format="parquet", filesystem=self.fs)
        table = dataset.to_table(filter=where)
        return table.sort_by([("decided_ms", "ascending")])

    def find(self, transaction_id: str) -> dict[str, Any] | None:
        """The latest decision recorded for this id, as `GET /v1/transactions/{id}` shows
        one, or None. Reads every partition: for disputes, not for the answer path."""
        found = list(rows(self.read(transaction_id=transaction_id)))
        return found[-1] if found else None

    def _files(self, day: str) -> list[str]:
        """A day's files. A file named `<journal>-<first>-<last>` that a later one of the
        same journal and first seq covers (written again after a crash) is left out."""
        selector = pafs.FileSelector(f"{self.root}/{DAY}={day}", allow_not_found=True)
        paths = sorted(
            i.path
            for i in self.fs.get_file_info(selector)
            if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")
            and not i.base_name.startswith(".")
        )  # fmt: skip
        widest: dict[tuple[str, str], tuple[str, str]] = {}
        kept = []
        for path in paths:
            match = _RANGE.fullmatch(path.rsplit("/", 1)[-1])
            if match is None:
                kept.append(path)
                continue
            key = (match["journal"], match["first"])
            if key not in widest or match["last"] > widest[key][0]:
                widest[key] = (match["last"], path)
        return sorted(kept + [path for _, path in widest.values()])


def days_of(ms: np.ndarray) -> np.ndarray:
    return np.asarray(ms, np.int64) // DAY_MS


def day_text(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def rows(table: pa.Table) -> Iterator[dict[str, Any]]:
    """The record's rows as plain dicts (reasons parsed), for JSON lines."""
    for row in table.to_pylist():
        row["reasons"] = json.loads(row["reasons"]) if row["reasons"] else None
        yield row
