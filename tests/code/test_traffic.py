"""The benchmarks' traffic files: every line a valid transaction at a fixed offset, so wrk's
Lua script and the open-loop client can seek to any one and join runs into batch bodies."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson

from benchmarks.traffic import build
from deployments.http.schemas import BatchIn, TransactionIn
from simulator.config import SimulationConfig

DAY_MS = 86_400_000


def test_lines_sit_at_fixed_offsets_and_join_into_a_batch(tmp_path: Path) -> None:
    cfg = SimulationConfig(n_customers=50, n_terminals=100, n_days=3, seed=3)
    traffic = build("normal", tmp_path, cfg)
    raw = traffic.path.read_bytes()
    assert len(raw) == traffic.count * traffic.width
    assert traffic.count > 100 and traffic.first_of_day(1) > 0

    rows = traffic.lines(0, traffic.count)
    txs = [TransactionIn.model_validate(orjson.loads(line)) for line in rows]
    assert len({t.transaction_id for t in txs}) == traffic.count
    assert [t.time_ms for t in txs] == sorted(t.time_ms for t in txs)
    day_one = traffic.first_of_day(1)
    midnight = (
        int(dt.datetime.combine(cfg.start_date, dt.time(), dt.UTC).timestamp() * 1000) + DAY_MS
    )
    assert all(t.time_ms < midnight for t in txs[:day_one])
    assert all(t.time_ms >= midnight for t in txs[day_one:])

    # What wrk_traffic.lua does: read a run of whole lines and drop the last comma.
    start, n = 7, 5
    chunk = raw[start * traffic.width : (start + n) * traffic.width].rstrip()
    body = b'{"transactions":[' + chunk[:-1] + b"]}"
    batch = BatchIn.model_validate(orjson.loads(body))
    assert [t.transaction_id for t in batch.transactions] == [
        t.transaction_id for t in txs[start : start + n]
    ]
    # A second build finds the file instead of rendering it again.
    assert build("normal", tmp_path, cfg) == traffic
