"""python -m benchmarks degraded: what the served model decides when state is late.

A degraded answer (docs/api.md) has no card or no terminal state. This scores the last
`--rows` handbook transactions with the committed model and the model card's thresholds,
with all their state, then with the card's, the terminal's or both groups of features
replaced: as missing values (NaN), and as the features of the transaction as its card's
and its terminal's first (`features.engine.first_card` and `first_terminal`, as the service
computes them). Reports the share blocked and reviewed,
and the share of frauds flagged (REVIEW or BLOCK). Prints a table and saves
benchmarks/results/degraded.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import save
from features.config import EngineConfig
from features.engine import first_card, first_terminal, terminal_hashes
from features.ids import as_id_strings
from features.offline import offline_features
from features.spec import CARD_COLUMNS, FEATURE_NAMES, TERMINAL_COLUMNS
from features.transactions import read_transactions, times_ms
from models.onnx import load_model
from policy.decision import BLOCK, REVIEW, Thresholds, tiers

DATA = Path("../shared/datasets/handbook/transactions.parquet")


def decided(scores: np.ndarray, thresholds: Thresholds, fraud: np.ndarray) -> dict[str, float]:
    tier = tiers(scores, thresholds)
    return {
        "block": float((tier == BLOCK).mean()),
        "review": float((tier == REVIEW).mean()),
        "frauds_flagged": float((tier[fraud] >= REVIEW).mean()) if fraud.any() else float("nan"),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks degraded")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--days", type=int, default=70, help="history read (from the first day)")
    ap.add_argument("--rows", type=int, default=60_000, help="the last rows scored")
    ap.add_argument("--model", default="models/default")
    a = ap.parse_args(argv)
    started = time.perf_counter()
    tx = read_transactions(a.data)
    first = tx["timestamp"].min()
    tx = tx[tx["timestamp"] < first + pd.Timedelta(days=a.days)].reset_index(drop=True)
    config = EngineConfig()
    names = list(FEATURE_NAMES)

    full_frame = offline_features(tx, config)
    scored = full_frame.index[-a.rows :]
    x = full_frame.loc[scored, names].to_numpy(np.float32)
    fraud = full_frame.loc[scored, "is_fraud"].to_numpy(bool)
    rows = tx.loc[scored]
    times = times_ms(rows["timestamp"])
    new_card = np.zeros_like(x)
    new_card[:, CARD_COLUMNS] = first_card(
        times,
        rows["amount"].to_numpy(np.float64),
        terminal_hashes(as_id_strings(rows["terminal_id"])),
    )
    new_terminal = np.zeros_like(x)
    new_terminal[:, TERMINAL_COLUMNS] = first_terminal(times, config.label_delay_ms)
    card = json.loads((Path(a.model) / "model_card.json").read_text())
    thresholds = Thresholds(**card["thresholds"])
    model = load_model(a.model)

    def run(replace: dict[str, np.ndarray | None]) -> dict[str, float]:
        m = x.copy()
        for group, value in replace.items():
            cols = CARD_COLUMNS if group == "card" else TERMINAL_COLUMNS
            m[:, cols] = np.nan if value is None else value[:, cols]
        return decided(model.score(m), thresholds, fraud)

    cases: dict[str, dict[str, float]] = {
        "all state": run({}),
        "card as missing values": run({"card": None}),
        "terminal as missing values": run({"terminal": None}),
        "both as missing values": run({"card": None, "terminal": None}),
        "card as first transaction": run({"card": new_card}),
        "terminal as first transaction": run({"terminal": new_terminal}),
        "both as first transaction": run({"card": new_card, "terminal": new_terminal}),
    }
    print(f"{len(scored):,} transactions ({int(fraud.sum()):,} frauds), {a.model}")
    print(f"{'state':<32} {'BLOCK':>7} {'REVIEW':>7} {'frauds flagged':>15}")
    for name, r in cases.items():
        print(f"{name:<32} {r['block']:7.2%} {r['review']:7.2%} {r['frauds_flagged']:15.1%}")
    result: dict[str, Any] = {
        "rows": len(scored),
        "frauds": int(fraud.sum()),
        "days": a.days,
        "model": a.model,
        "thresholds": card["thresholds"],
        "cases": cases,
        "seconds": round(time.perf_counter() - started, 1),
    }
    save("degraded", result)


if __name__ == "__main__":
    main()
