"""The transaction table: one canonical schema, readable from ours or the handbook's files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from features.parts import is_partitioned, is_uri, read_parts

COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "timestamp",
    "user_id",
    "terminal_id",
    "amount",
    "is_fraud",
    "fraud_scenario",
)
# `fraud_scenario` codes (the handbook's simulator and ours): what each kind of fraud is.
SCENARIOS: dict[int, str] = {
    0: "genuine",
    1: "amount > 220",
    2: "compromised terminal",
    3: "compromised card",
    4: "card testing",
    5: "device farm",
    6: "account takeover",
    7: "cross-border",
}
REQUIRED: tuple[str, ...] = ("transaction_id", "timestamp", "user_id", "terminal_id", "amount")

HANDBOOK_TO_CANONICAL: dict[str, str] = {
    "TRANSACTION_ID": "transaction_id",
    "TX_DATETIME": "timestamp",
    "CUSTOMER_ID": "user_id",
    "TERMINAL_ID": "terminal_id",
    "TX_AMOUNT": "amount",
    "TX_FRAUD": "is_fraud",
    "TX_FRAUD_SCENARIO": "fraud_scenario",
}


class SchemaError(ValueError):
    """A transaction file lacks a column or holds values the engine cannot use."""


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Rename handbook columns, check required ones, fix dtypes; keeps extra columns."""
    df = df.rename(columns={k: v for k, v in HANDBOOK_TO_CANONICAL.items() if k in df.columns})
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise SchemaError(
            f"transaction table lacks column(s) {missing}; expected {list(REQUIRED)} "
            f"or the handbook's {list(HANDBOOK_TO_CANONICAL)}"
        )
    out = df.copy()
    ts = pd.to_datetime(out["timestamp"], utc=True, errors="coerce")
    if ts.isna().any():
        raise SchemaError(f"column 'timestamp': {int(ts.isna().sum())} unparseable value(s)")
    out["timestamp"] = ts.dt.tz_localize(None).astype("datetime64[ms]")
    amount = pd.to_numeric(out["amount"], errors="coerce").astype(np.float64)
    if not np.isfinite(amount.to_numpy()).all() or (amount < 0).any():
        raise SchemaError("column 'amount': values must be finite and >= 0")
    out["amount"] = amount
    if "currency" in out.columns:  # ISO 4217 codes, any case in (as the API takes them)
        out["currency"] = out["currency"].where(
            out["currency"].isna(), out["currency"].astype(str).str.upper()
        )
    for col in ("is_fraud", "fraud_scenario"):
        out[col] = out[col].fillna(0).astype(np.int8) if col in out.columns else np.int8(0)
    return out


def read_transactions(path: str | Path, parts: Sequence[int] | None = None) -> pd.DataFrame:
    """Read a Parquet (or CSV) transaction file in either schema, normalised; or a
    partitioned table (`features.parts`: a directory or URI), only `parts` of it if given,
    in event-time order with ties by transaction id, whichever parts it holds."""
    if is_uri(path) or is_partitioned(path):
        df = read_parts(path, parts).to_pandas()
        return normalise(
            df.sort_values(["timestamp", "transaction_id"], kind="stable").reset_index(drop=True)
        )
    if parts is not None:
        raise SchemaError(f"parts: {path} is one file, not a partitioned table")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no transaction file at {path}")
    df = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    return normalise(df)


def sort_by_event_time(df: pd.DataFrame) -> pd.DataFrame:
    """Event-time order; ties keep file order (a stable sort), as a live stream would."""
    return df.sort_values("timestamp", kind="stable").reset_index(drop=True)


def times_ms(timestamps: pd.Series) -> np.ndarray:
    """Milliseconds since the Unix epoch (UTC) as int64."""
    return timestamps.astype("datetime64[ms]").to_numpy().astype(np.int64)
