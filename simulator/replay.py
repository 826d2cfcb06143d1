"""Play a transaction file against the service over HTTP, in event-time order, with labels.

Event time is cut into slices (default one hour, never longer than the label delay). At the
start of a slice, the labels that became known by its end are sent to `/v1/feedback`; then
the slice's transactions go out on `concurrency` lanes, a card always on the same lane and
in order. A label can only affect transactions at least `delay` younger than the one it
labels, so sending it at the start of its slice gives exactly the offline engine's numbers.

A request the service answers 429 or 5xx (a shard restarting, state moving between layouts,
a full queue, a replica lost with its node), or whose connection fails, is sent again with
the same body after its `Retry-After`, for up to `retry_for_s`: the service deduplicates by
transaction id, so a retry is answered as the first and never counts twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
)

from features.ids import as_id_strings, id_buckets
from features.offline import feedback_from_labels
from features.spec import MS_PER_DAY
from features.transactions import sort_by_event_time
from simulator import gateway

Progress = Callable[[int, int, dict[str, int]], None]
# 500 too: the host-loss drill saw 3-8 per run while a node died, with no trace in our code
# (a suspect, not confirmed: Serve's own proxy, HAProxy's backup server, routing to a replica
# that died with the node); the service deduplicates by id, so the same body again is safe.
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_WAIT_S = 2.0  # longest pause between tries, whatever Retry-After says
OPTIONAL_FIELDS = ("currency", *gateway.COLUMNS)  # sent when a row has them (docs/api.md)


@dataclass(frozen=True)
class ReplayOptions:
    url: str = "http://127.0.0.1:8000"
    concurrency: int = 8
    batch: int = 1
    rate: float | None = None  # transactions per second, all lanes together
    labels: bool = True
    label_delay_days: float = 7.0
    slice_seconds: float = 3600.0
    include_features: bool = False
    timeout_s: float = 30.0
    max_seconds: float | None = None  # stop (and report what was done) after this long
    api_key: str | None = None
    retry_for_s: float = 30.0  # how long one request is retried (429, 503, no connection)
    id_prefix: str = ""  # put before every id, so a stream can be played again as new cards
    deadline_ms: float | None = None  # x-fraud-deadline-ms on every transaction request


@dataclass
class ReplayResult:
    """What the client saw: one row per transaction sent, plus label and error counts."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    labels_sent: int = 0
    labels_not_found: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    retries: int = 0  # requests sent again after a 429, a 503 or a failed connection
    wall_seconds: float = 0.0
    stopped_early: bool = False

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


class _Pacer:
    """Spaces requests so the whole replay keeps to `rate` transactions per second."""

    def __init__(self, rate: float | None) -> None:
        self.rate, self.sent, self.start = rate, 0, time.perf_counter()

    async def wait(self, n: int) -> None:
        if not self.rate:
            return
        due = self.start + self.sent / self.rate
        self.sent += n
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)


def with_id_prefix(df: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """`df` with `prefix` before every transaction, card and terminal id."""
    if not prefix:
        return df
    ids = ("transaction_id", "user_id", "terminal_id")
    return df.assign(**{c: [prefix + i for i in as_id_strings(df[c])] for c in ids})


def tx_bodies(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The API's JSON body for every row, built column by column (a pandas Timestamp per row
    cost ~4 us, on the cores the service scores with). Timezone-aware times are sent as
    their UTC wall time: naive means UTC to the API."""
    ts = pd.to_datetime(df["timestamp"])
    if ts.dt.tz is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    stamps = np.datetime_as_string(ts.to_numpy().astype("datetime64[ms]"), unit="ms").tolist()
    columns = zip(
        as_id_strings(df["transaction_id"]),
        as_id_strings(df["user_id"]),
        as_id_strings(df["terminal_id"]),
        df["amount"].astype(float).tolist(),
        stamps,
        strict=True,
    )
    bodies = [
        {"transaction_id": t, "user_id": u, "terminal_id": k, "amount": a, "timestamp": s}
        for t, u, k, a, s in columns
    ]
    for name in OPTIONAL_FIELDS:  # the gateway's fields, where the history has them
        if name in df.columns:
            values = df[name].astype(object).where(df[name].notna(), None).tolist()
            for body, value in zip(bodies, values, strict=True):
                if value is not None:
                    body[name] = value
    return bodies


def _retry_after(state: RetryCallState) -> float:
    """The answer's Retry-After (capped), else a short exponential pause."""
    outcome = state.outcome
    if outcome is not None and not outcome.failed:
        value = outcome.result().headers.get("retry-after", "")
        try:
            return min(max(float(value), 0.0), MAX_WAIT_S)
        except ValueError:
            pass
    return float(min(0.1 * 2 ** (state.attempt_number - 1), MAX_WAIT_S))


def _last_answer(state: RetryCallState) -> httpx.Response:
    """Out of time: the last answer, or the last connection error raised."""
    assert state.outcome is not None
    answer: httpx.Response = state.outcome.result()
    return answer


class ServiceClient:
    """The service over HTTP: every request retried while the service is briefly away."""

    def __init__(self, opts: ReplayOptions, result: ReplayResult) -> None:
        headers = {"content-type": "application/json"}
        if opts.api_key:
            headers["authorization"] = f"Bearer {opts.api_key}"
        if opts.deadline_ms is not None:  # labels ignore it; every request may carry it
            headers["x-fraud-deadline-ms"] = f"{opts.deadline_ms:g}"
        self.http = httpx.AsyncClient(
            base_url=opts.url,
            headers=headers,
            timeout=opts.timeout_s,
            limits=httpx.Limits(max_connections=opts.concurrency + 2),
        )
        self.opts, self.result = opts, result

    def _error(self, key: str, n: int = 1) -> None:
        self.result.errors[key] = self.result.errors.get(key, 0) + n

    def _retried(self, _: RetryCallState) -> None:
        self.result.retries += 1

    async def post(
        self, path: str, body: Any, params: dict[str, str] | None = None
    ) -> httpx.Response:
        """POST `body`, again while the service answers 429/5xx-unavailable or the
        connection fails, for up to `retry_for_s`; then the last answer (or its error)."""
        content = orjson.dumps(body)
        resp: httpx.Response | None = None
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(httpx.TransportError)
            | retry_if_result(lambda r: r.status_code in RETRIED_STATUSES),
            wait=_retry_after,
            stop=stop_after_delay(self.opts.retry_for_s),
            before_sleep=self._retried,
            retry_error_callback=_last_answer,
        ):
            with attempt:
                resp = await self.http.post(path, content=content, params=params)
            if not attempt.retry_state.outcome.failed:  # type: ignore[union-attr]
                attempt.retry_state.set_result(resp)
        assert resp is not None
        return resp

    async def send_transactions(
        self, bodies: list[dict[str, Any]], meta: list[dict[str, Any]]
    ) -> None:
        params = {"include_features": "true"} if self.opts.include_features else None
        single = self.opts.batch == 1
        path = "/v1/transactions" if single else "/v1/transactions/batch"
        payload = bodies[0] if single else {"transactions": bodies}
        sent_at, t0 = time.time(), time.perf_counter()
        try:
            resp = await self.post(path, payload, params)
        except httpx.HTTPError as e:
            self._error(type(e).__name__, len(bodies))
            return
        latency_ms = (time.perf_counter() - t0) * 1000
        if resp.status_code == 422 and not single:
            # A batch is rejected whole (and changes nothing): resend one by one so only the
            # invalid transactions are refused.
            for body, m in zip(bodies, meta, strict=True):
                await self._send_one(body, m)
            return
        if resp.status_code != 200:
            self._error(f"http_{resp.status_code}", len(bodies))
            return
        data = orjson.loads(resp.content)
        results = [data] if single else data["results"]
        for m, r in zip(meta, results, strict=True):
            self._record(m, r, latency_ms, sent_at)

    async def _send_one(self, body: dict[str, Any], meta: dict[str, Any]) -> None:
        params = {"include_features": "true"} if self.opts.include_features else None
        sent_at, t0 = time.time(), time.perf_counter()
        try:
            resp = await self.post("/v1/transactions", body, params)
        except httpx.HTTPError as e:
            self._error(type(e).__name__)
            return
        if resp.status_code != 200:
            self._error(f"http_{resp.status_code}")
            return
        latency_ms = (time.perf_counter() - t0) * 1000
        self._record(meta, orjson.loads(resp.content), latency_ms, sent_at)

    def _record(
        self, meta: dict[str, Any], r: dict[str, Any], latency_ms: float, sent_at: float
    ) -> None:
        row = {
            **meta,
            "score": r["score"],
            "decision": r["decision"],
            "model_version": r["model_version"],
            "latency_ms": latency_ms,
            "sent_at": sent_at,  # wall clock (s): which phase of a drill an answer fell in
            "degraded_reason": r.get("degraded_reason"),  # answered without some state: why
        }
        if self.opts.include_features:
            row["features"] = r["features"]
        self.result.rows.append(row)

    async def send_labels(self, labels: pd.DataFrame) -> None:
        for a in range(0, len(labels), 1000):
            part = labels.iloc[a : a + 1000]
            columns = zip(
                part["transaction_id"], part["terminal_id"], part["is_fraud"], strict=True
            )
            body = {
                "labels": [
                    {"transaction_id": str(t), "terminal_id": str(k), "is_fraud": bool(f)}
                    for t, k, f in columns
                ]
            }
            try:
                resp = await self.post("/v1/feedback", body)
            except httpx.HTTPError as e:
                self._error(f"feedback_{type(e).__name__}", len(part))
                continue
            if resp.status_code != 200:
                self._error(f"feedback_http_{resp.status_code}", len(part))
                continue
            self.result.labels_sent += len(part)
            self.result.labels_not_found += len(orjson.loads(resp.content)["not_found"])


def _lane_of(users: pd.Series, lanes: int) -> np.ndarray:
    codes, uniques = pd.factorize(users)
    return id_buckets(as_id_strings(uniques), lanes, salt="lane:")[codes]


async def replay_stream(
    transactions: pd.DataFrame, opts: ReplayOptions, progress: Progress | None = None
) -> ReplayResult:
    """Send every transaction (and its label, once known) and collect the answers."""
    if opts.labels and opts.slice_seconds > opts.label_delay_days * 86_400:
        raise ValueError("slice_seconds must not exceed the label delay")
    df = sort_by_event_time(with_id_prefix(transactions, opts.id_prefix))
    result = ReplayResult()
    client = ServiceClient(opts, result)
    pacer = _Pacer(opts.rate)
    started = time.perf_counter()

    if opts.labels:
        labels = feedback_from_labels(df, int(opts.label_delay_days * MS_PER_DAY))
        labels = labels.merge(df[["transaction_id", "terminal_id"]], on="transaction_id")
        labels = labels.sort_values("timestamp", kind="stable").reset_index(drop=True)
        label_ms = labels["timestamp"].astype("datetime64[ms]").to_numpy().astype(np.int64)
    else:
        labels, label_ms = df.iloc[:0], np.empty(0, np.int64)

    times = df["timestamp"].astype("datetime64[ms]").to_numpy().astype(np.int64)
    slice_ms = int(opts.slice_seconds * 1000)
    slice_id = times // slice_ms
    bounds = np.flatnonzero(np.diff(slice_id)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(df)]])
    lanes = _lane_of(df["user_id"], opts.concurrency)
    bodies = tx_bodies(df)
    meta_cols = [c for c in ("transaction_id", "user_id", "is_fraud", "fraud_scenario") if c in df]
    metas = df[meta_cols].to_dict("records")
    counts: dict[str, int] = {}
    next_label = 0
    done = 0

    async def run_lane(idx: np.ndarray) -> None:
        for a in range(0, len(idx), opts.batch):
            part = idx[a : a + opts.batch]
            await pacer.wait(len(part))
            await client.send_transactions([bodies[i] for i in part], [metas[i] for i in part])

    try:
        for s, e in zip(starts, ends, strict=True):
            if opts.max_seconds and time.perf_counter() - started > opts.max_seconds:
                result.stopped_early = True
                break
            slice_end = (slice_id[s] + 1) * slice_ms
            upto = int(np.searchsorted(label_ms, slice_end, side="left"))
            if upto > next_label:
                await client.send_labels(labels.iloc[next_label:upto])
                next_label = upto
            rows = np.arange(s, e)
            lane_rows = [rows[lanes[s:e] == k] for k in range(opts.concurrency)]
            n_before = len(result.rows)
            await asyncio.gather(*(run_lane(r) for r in lane_rows if len(r)))
            for row in result.rows[n_before:]:
                counts[row["decision"]] = counts.get(row["decision"], 0) + 1
            done = e
            if progress:
                progress(done, len(df), {**counts, "errors": sum(result.errors.values())})
    finally:
        await client.http.aclose()
    result.wall_seconds = time.perf_counter() - started
    return result
