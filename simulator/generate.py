"""Vectorised generator of the handbook's transaction model, streamed day by day.

Customers and terminals sit on a 100x100 grid; a card pays only at terminals within the
radius. Per day each card makes Poisson(mean) payments at normal times of day with normal
amounts. Fraud: (1) every amount > 220; (2) each day a few terminals are compromised for 28
days; (3) each day a few cards are compromised for 14 days and a third of their payments are
fraud with amount x5; (4, ours) card testing: a burst of small payments at terminals the card
never used, within minutes, which only time-aware per-card features can see.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from simulator.config import SimulationConfig

SCHEMA = pa.schema(
    [
        ("transaction_id", pa.int64()),
        ("timestamp", pa.timestamp("ms")),
        ("user_id", pa.int64()),
        ("terminal_id", pa.int64()),
        ("amount", pa.float64()),
        ("is_fraud", pa.int8()),
        ("fraud_scenario", pa.int8()),
    ]
)
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Profiles:
    """Customer and terminal profiles, plus each customer's reachable terminals (CSR)."""

    mean_amount: np.ndarray
    std_amount: np.ndarray
    mean_tx_per_day: np.ndarray
    terminal_offsets: np.ndarray  # customer i's terminals: terminal_ids[offsets[i]:offsets[i+1]]
    terminal_ids: np.ndarray


def make_profiles(cfg: SimulationConfig, rng: np.random.Generator) -> Profiles:
    n_c, n_t = cfg.n_customers, cfg.n_terminals
    cust_xy = rng.uniform(0, 100, size=(n_c, 2))
    mean_amount = rng.uniform(5, 100, size=n_c)
    std_amount = mean_amount / 2
    mean_tx = rng.uniform(0, 4, size=n_c)
    term_xy = rng.uniform(0, 100, size=(n_t, 2)).astype(np.float32)

    counts = np.zeros(n_c, dtype=np.int64)
    chunks: list[np.ndarray] = []
    r2 = np.float32(cfg.radius**2)
    block = max(1, 20_000_000 // max(n_t, 1))  # bound the distance matrix to ~80 MB
    for a in range(0, n_c, block):
        c = cust_xy[a : a + block].astype(np.float32)
        d2 = ((c[:, None, :] - term_xy[None, :, :]) ** 2).sum(axis=2)
        rows, cols = np.nonzero(d2 < r2)
        counts[a : a + len(c)] = np.bincount(rows, minlength=len(c))
        chunks.append(cols.astype(np.int32))
    offsets = np.zeros(n_c + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Profiles(mean_amount, std_amount, mean_tx, offsets, np.concatenate(chunks))


class _ActiveSet:
    """Ids compromised until a given day (exclusive)."""

    def __init__(self) -> None:
        self.until: dict[int, int] = {}

    def add(self, ids: np.ndarray, until_day: int) -> None:
        for i in ids.tolist():
            self.until[i] = max(self.until.get(i, 0), until_day)

    def active(self, day: int) -> np.ndarray:
        self.until = {k: v for k, v in self.until.items() if v > day}
        return np.fromiter(self.until.keys(), dtype=np.int64, count=len(self.until))


def _genuine_day(
    day: int, p: Profiles, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_avail = np.diff(p.terminal_offsets)
    n_tx = rng.poisson(p.mean_tx_per_day)
    n_tx[n_avail == 0] = 0
    cust = np.repeat(np.arange(len(n_tx), dtype=np.int64), n_tx)
    secs = rng.normal(SECONDS_PER_DAY / 2, 20_000, size=len(cust)).astype(np.int64)
    keep = (secs > 0) & (secs < SECONDS_PER_DAY)
    cust, secs = cust[keep], secs[keep]
    mean, std = p.mean_amount[cust], p.std_amount[cust]
    amount = rng.normal(mean, std)
    neg = amount < 0
    amount[neg] = rng.uniform(0, 2 * mean[neg])
    amount = np.round(amount, 2)
    pick = (rng.random(len(cust)) * n_avail[cust]).astype(np.int64)
    term = p.terminal_ids[p.terminal_offsets[cust] + pick].astype(np.int64)
    return cust, term, secs + day * SECONDS_PER_DAY, amount


def _card_testing(
    day: int, cfg: SimulationConfig, p: Profiles, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    k = cfg.card_testing_per_day
    if k == 0:
        empty = np.empty(0, np.int64)
        return empty, empty, empty, np.empty(0)
    cards = rng.choice(cfg.n_customers, size=k, replace=False)
    sizes = rng.integers(cfg.card_testing_min_tx, cfg.card_testing_max_tx + 1, size=k)
    span = cfg.card_testing_span_minutes * 60
    starts = rng.uniform(0, SECONDS_PER_DAY - span, size=k)
    cust = np.repeat(cards.astype(np.int64), sizes)
    offs = rng.uniform(0, span, size=len(cust))
    secs = (np.repeat(starts, sizes) + offs).astype(np.int64) + day * SECONDS_PER_DAY
    amount = np.round(rng.uniform(0.5, 3.0, size=len(cust)), 2)
    term = rng.integers(0, cfg.n_terminals, size=len(cust)).astype(np.int64)
    return cust, term, secs, amount


def generate_days(cfg: SimulationConfig) -> Iterator[pd.DataFrame]:
    """Yield one DataFrame per simulated day, in time order, with global transaction ids."""
    rng = np.random.default_rng(cfg.seed)
    profiles = make_profiles(cfg, rng)
    terminals, customers = _ActiveSet(), _ActiveSet()
    start = np.datetime64(cfg.start_date, "s")
    next_id = 0
    for day in range(cfg.n_days):
        g = _genuine_day(day, profiles, rng)
        c = _card_testing(day, cfg, profiles, rng)
        cust = np.concatenate([g[0], c[0]])
        term = np.concatenate([g[1], c[1]])
        secs = np.concatenate([g[2], c[2]])
        amount = np.concatenate([g[3], c[3]])
        scenario = np.zeros(len(cust), dtype=np.int8)

        scenario[amount > 220] = 1
        n_ct = min(cfg.compromised_terminals_per_day, cfg.n_terminals)
        terminals.add(
            rng.choice(cfg.n_terminals, n_ct, replace=False), day + cfg.terminal_compromise_days
        )
        scenario[np.isin(term, terminals.active(day))] = 2
        n_cc = min(cfg.compromised_customers_per_day, cfg.n_customers)
        customers.add(
            rng.choice(cfg.n_customers, n_cc, replace=False), day + cfg.customer_compromise_days
        )
        hit = np.isin(cust, customers.active(day)) & (rng.random(len(cust)) < 1 / 3)
        hit[len(g[0]) :] = False  # card-testing rows keep their own scenario
        amount[hit] = np.round(amount[hit] * 5, 2)
        scenario[hit] = 3
        scenario[len(g[0]) :] = 4

        order = np.argsort(secs, kind="stable")
        n = len(order)
        yield pd.DataFrame(
            {
                "transaction_id": np.arange(next_id, next_id + n, dtype=np.int64),
                "timestamp": start + secs[order].astype("timedelta64[s]"),
                "user_id": cust[order],
                "terminal_id": term[order],
                "amount": amount[order],
                "is_fraud": (scenario[order] > 0).astype(np.int8),
                "fraud_scenario": scenario[order],
            }
        )
        next_id += n


def write_parquet(
    cfg: SimulationConfig, path: str | Path, progress: object | None = None
) -> dict[str, float]:
    """Stream the simulation to Parquet, one row group per day; returns summary statistics."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_rows = n_fraud = 0
    by_scenario = np.zeros(5, dtype=np.int64)
    with pq.ParquetWriter(path, SCHEMA) as writer:
        for day, frame in enumerate(generate_days(cfg)):
            frame["timestamp"] = frame["timestamp"].astype("datetime64[ms]")
            writer.write_table(pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False))
            n_rows += len(frame)
            n_fraud += int(frame["is_fraud"].sum())
            by_scenario += np.bincount(frame["fraud_scenario"], minlength=5)[:5]
            if callable(progress):
                progress(day + 1, cfg.n_days)
    return {
        "transactions": n_rows,
        "frauds": n_fraud,
        "fraud_rate": n_fraud / max(n_rows, 1),
        "transactions_per_day": n_rows / cfg.n_days,
        **{f"scenario_{k}": int(by_scenario[k]) for k in range(1, 5)},
    }
