"""`fraud backfill`: a team's history into the service's state, deciding nothing.

The history goes to `POST /v1/backfill` in event-time order, through the engine that
scores (card and terminal state), with each label sent in the request that reaches its
time (labels first on ties, as the offline driver orders them), so the service afterwards
scores the next transactions exactly as an offline replay of the whole file would. Nothing
is decided, recorded or queued for review.

Resumable: after every request the service has applied, the rows and labels done are
written to a progress file; a run that stopped (an error, Ctrl-C, a lost connection) starts
again from there. The request in flight when it stopped is sent again, and the service
recognises its transactions (applied once) and labels (set, not added).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd

from features.ids import as_id_strings
from features.offline import feedback_from_labels
from features.spec import MS_PER_DAY
from features.transactions import sort_by_event_time
from simulator.replay import ReplayOptions, ReplayResult, ServiceClient, tx_bodies

Progress = Callable[[int, int], None]


class BackfillError(RuntimeError):
    """The service refused a request: the message says which rows and why."""


@dataclass(frozen=True)
class Step:
    """One request: labels known by its first transaction, then transactions up to the
    next label's time (row ranges in the event-time ordered history and label list)."""

    labels: tuple[int, int]
    rows: tuple[int, int]


@dataclass
class Done:
    """What the progress file holds: how far the service has applied this history."""

    source: str
    rows_total: int
    rows: int = 0
    labels: int = 0
    applied: int = 0
    duplicates: int = 0
    conflicts: int = 0
    labels_not_found: int = 0


def plan(times_ms: np.ndarray, label_ms: np.ndarray, batch: int) -> Iterator[Step]:
    """Requests in event order: a label goes in the first request whose first transaction
    is at or after its time, and a request's transactions stop before the next label's."""
    n, m = len(times_ms), len(label_ms)
    i = j = 0
    while i < n or j < m:
        due = m if i == n else int(np.searchsorted(label_ms, times_ms[i], side="right"))
        due = max(due, j)
        stop = n if due == m else int(np.searchsorted(times_ms, label_ms[due], side="left"))
        end = min(i + batch, max(stop, i))
        yield Step((j, due), (i, end))
        i, j = end, due


def _labels(df: pd.DataFrame, delay_days: float | None) -> pd.DataFrame:
    """Label events (transaction, terminal, value, time known): each fraud `delay` after it
    happened, as the handbook defines them; none when `delay_days` is None."""
    if delay_days is None:
        return pd.DataFrame(columns=["transaction_id", "terminal_id", "is_fraud", "timestamp"])
    labels = feedback_from_labels(df, int(delay_days * MS_PER_DAY))
    labels = labels.merge(df[["transaction_id", "terminal_id"]], on="transaction_id")
    return labels.sort_values("timestamp", kind="stable").reset_index(drop=True)


def _ms(column: pd.Series) -> np.ndarray:
    return column.astype("datetime64[ms]").to_numpy().astype(np.int64)


def _save(path: Path, done: Done) -> None:
    """Written whole, then renamed: a stop mid-write leaves the previous progress."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part")
    part.write_text(json.dumps(asdict(done), indent=1))
    os.replace(part, path)


def resume_from(path: Path, source: str, total: int) -> Done:
    """The progress of an earlier run over the same history, else a fresh start."""
    if not path.exists():
        return Done(source, total)
    done = Done(**json.loads(path.read_text()))
    if (done.source, done.rows_total) != (source, total):
        raise BackfillError(
            f"{path} is the progress of another history ({done.source}, "
            f"{done.rows_total:,} rows); pass another --progress-file or remove it"
        )
    return done


async def backfill(
    history: pd.DataFrame,
    source: str,
    progress_file: Path,
    opts: ReplayOptions,
    label_delay_days: float | None = 7.0,
    progress: Progress | None = None,
    max_requests: int | None = None,
) -> Done:
    """Send the history (from where `progress_file` says) and return how far it got.
    `max_requests` stops early (a test's interruption)."""
    df = sort_by_event_time(history).reset_index(drop=True)
    labels = _labels(df, label_delay_days)
    done = resume_from(progress_file, source, len(df))
    times, label_ms = _ms(df["timestamp"]), _ms(labels["timestamp"])
    bodies = tx_bodies(df)
    label_bodies = [
        {"transaction_id": t, "terminal_id": k, "is_fraud": bool(f)}
        for t, k, f in zip(
            as_id_strings(labels["transaction_id"]),
            as_id_strings(labels["terminal_id"]),
            labels["is_fraud"].tolist(),
            strict=True,
        )
    ]
    client = ServiceClient(opts, ReplayResult())
    sent = 0
    try:
        for step in plan(times, label_ms, opts.batch):
            if step.rows[1] <= done.rows and step.labels[1] <= done.labels:
                continue  # done by an earlier run
            if max_requests is not None and sent >= max_requests:
                break
            body: dict[str, Any] = {
                "transactions": bodies[step.rows[0] : step.rows[1]],
                "labels": label_bodies[step.labels[0] : step.labels[1]],
            }
            try:
                resp = await client.post("/v1/backfill", body)
            except httpx.HTTPError as e:
                raise BackfillError(
                    f"the service did not answer for {opts.retry_for_s:g} s "
                    f"({type(e).__name__}); run the same command again to resume"
                ) from None
            sent += 1
            if resp.status_code != 200:
                detail = resp.text[:300]
                raise BackfillError(
                    f"rows {step.rows[0]:,}-{step.rows[1] - 1:,} (event-time order): the "
                    f"service answered {resp.status_code}: {detail}; fix them and run the "
                    f"same command again (progress is in {progress_file})"
                )
            out = orjson.loads(resp.content)
            done.rows, done.labels = step.rows[1], step.labels[1]
            done.applied += out["applied"]
            done.duplicates += out["duplicates"]
            done.conflicts += len(out["conflicts"])
            done.labels_not_found += len(out["labels_not_found"])
            _save(progress_file, done)
            if progress:
                progress(done.rows, len(df))
    finally:
        await client.http.aclose()
    return done
