"""Offline driver: replay a transaction history (and its labels) through the engine.

Transactions go through the user store in event-time order; transactions and label events
go through the terminal store as one stream ordered by time, labels first on ties (a label
known at t counts for a transaction at t). The online service applies the same kernels as
events arrive, so both produce the same numbers for the same stream.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from features.config import EngineConfig
from features.engine import (
    LABEL,
    TX,
    FeatureEngine,
    assemble,
    stateless_features,
    terminal_hashes,
)
from features.gateway import Gateway, normal_country, normal_email, normal_ip
from features.ids import OFFLINE, as_id_strings
from features.spec import CARD_WIDTH, FEATURE_NAMES, LINK_WIDTH, TERMINAL_WIDTH
from features.transactions import sort_by_event_time, times_ms

META_COLUMNS = (
    "transaction_id",
    "timestamp",
    "user_id",
    "terminal_id",
    "is_fraud",
    "fraud_scenario",
)
Progress = Callable[[int, int], None]


def feedback_from_labels(transactions: pd.DataFrame, delay_ms: int) -> pd.DataFrame:
    """The handbook's label model: every fraud becomes known `delay` after it happened."""
    fraud = transactions[transactions["is_fraud"] == 1]
    return pd.DataFrame(
        {
            "transaction_id": fraud["transaction_id"].to_numpy(),
            "is_fraud": np.ones(len(fraud), dtype=np.int8),
            "timestamp": fraud["timestamp"].to_numpy() + np.timedelta64(delay_ms, "ms"),
        }
    )


def gateway_columns(df: pd.DataFrame) -> Gateway:
    """The gateway's optional columns of a table (None where a value, or the column, is
    missing)."""
    n = len(df)

    def column(name: str, normal: Callable[[str], str] = str) -> list[str | None]:
        if name not in df.columns:
            return [None] * n
        values = df[name].astype(object).where(df[name].notna(), None)
        return [None if v is None or v == "" else normal(str(v)) for v in values.tolist()]

    # As the service's schema reads them (`deployments.http.schemas.TransactionIn`).
    return Gateway(
        column("channel"), column("bin_country", normal_country),
        column("merchant_country", normal_country), column("device_id"),
        column("ip", normal_ip), column("email", normal_email),
    )  # fmt: skip


def _codes_and_ids(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    codes, uniques = pd.factorize(column, sort=False)
    return codes, as_id_strings(uniques)


def offline_features(
    transactions: pd.DataFrame,
    config: EngineConfig | None = None,
    feedback: pd.DataFrame | None = None,
    use_labels: bool = True,
    chunk_rows: int = 262_144,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Features for every transaction of a normalised table, in event-time order.

    `feedback` holds label events (transaction_id, is_fraud, timestamp = when the label became
    known). Without it, and with `use_labels`, labels come from `is_fraud` with the configured
    delay, as the handbook defines them.
    """
    config = config or EngineConfig()
    df = sort_by_event_time(transactions)
    n = len(df)
    engine = FeatureEngine(config)
    t = times_ms(df["timestamp"])
    amounts = df["amount"].to_numpy(dtype=np.float64)
    if "currency" in df.columns:  # in the reporting currency, as the online pipeline does
        amounts = config.currency.column_to_reporting(amounts, df["currency"])

    u_codes, u_ids = _codes_and_ids(df["user_id"])
    u_slots = engine.users.slots_for(u_ids)[u_codes]
    k_codes, k_ids = _codes_and_ids(df["terminal_id"])
    k_slots = engine.terminals.slots_for(k_ids)[k_codes]
    k_hashes = terminal_hashes(k_ids)[k_codes]
    keys = OFFLINE.transaction_keys(df["transaction_id"])

    if feedback is None and use_labels:
        feedback = feedback_from_labels(df, config.label_delay_ms)
    if feedback is not None and len(feedback):
        rows = pd.Index(df["transaction_id"]).get_indexer(feedback["transaction_id"])
        known = rows >= 0
        label_rows = rows[known]
        label_times = times_ms(pd.Series(feedback["timestamp"].to_numpy()[known]))
        label_values = feedback["is_fraud"].to_numpy()[known].astype(np.int8)
    else:
        label_rows = np.empty(0, np.int64)
        label_times = np.empty(0, np.int64)
        label_values = np.empty(0, np.int8)

    total_work = 3 * n + len(label_rows)
    done = 0

    user = np.empty((n, CARD_WIDTH), dtype=np.float64)
    for a in range(0, n, chunk_rows):
        b = min(a + chunk_rows, n)
        user[a:b] = engine.users.update(u_slots[a:b], t[a:b], amounts[a:b], k_hashes[a:b])
        done += b - a
        if progress:
            progress(done, total_work)

    ev_time = np.concatenate([t, label_times])
    ev_kind = np.concatenate([np.full(n, TX, np.int8), np.full(len(label_rows), LABEL, np.int8)])
    ev_row = np.concatenate([np.arange(n, dtype=np.int64), label_rows.astype(np.int64)])
    ev_label = np.concatenate([np.zeros(n, np.int8), label_values])
    order = np.lexsort((ev_kind == TX, ev_time))  # stable: labels first on equal times
    ev_time, ev_kind, ev_row, ev_label = (
        ev_time[order],
        ev_kind[order],
        ev_row[order],
        ev_label[order],
    )

    terminal = np.empty((n, TERMINAL_WIDTH), dtype=np.float64)
    for a in range(0, len(ev_row), chunk_rows):
        b = min(a + chunk_rows, len(ev_row))
        rows = ev_row[a:b]
        out, _ = engine.terminals.step(
            ev_kind[a:b], k_slots[rows], ev_time[a:b], keys[rows], ev_label[a:b]
        )
        is_tx = ev_kind[a:b] == TX
        terminal[rows[is_tx]] = out[is_tx]
        done += b - a
        if progress:
            progress(done, total_work)

    gateway = gateway_columns(df)
    user_ids = as_id_strings(df["user_id"].to_numpy())
    link_parts = [(np.empty(0, np.int64), np.empty(0, np.int8), np.empty((0, LINK_WIDTH)))]
    for a in range(0, n, chunk_rows):  # the engine's own link step, a chunk at a time
        b = min(a + chunk_rows, n)
        rows, kinds, values = engine.link_step(gateway.part(a, b), user_ids[a:b], t[a:b], keys[a:b])
        link_parts.append((rows + a, kinds, values))
        done += b - a
        if progress:
            progress(done, total_work)
    link_rows, link_kinds, link_values = (np.concatenate(p) for p in zip(*link_parts, strict=True))
    matrix = assemble(
        stateless_features(t, amounts, gateway.flags()), user, terminal,
        (link_rows, link_kinds, link_values),
    )  # fmt: skip
    out_df = df[[c for c in META_COLUMNS if c in df.columns]].copy()
    features = pd.DataFrame(matrix, columns=list(FEATURE_NAMES), index=out_df.index)
    return pd.concat([out_df, features], axis=1)
