"""The replay report: decisions vs ground truth, detection by scenario, latency, throughput."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.transactions import SCENARIOS
from simulator.replay import ReplayResult

# What `fraud replay --answers` keeps per transaction: the service's answer, never a card id.
ANSWER_COLUMNS = (
    "transaction_id", "score", "decision", "model_version", "latency_ms", "sent_at",
    "degraded_reason", "is_fraud", "fraud_scenario",
)  # fmt: skip


def answers(result: ReplayResult) -> pd.DataFrame:
    """One row per answered transaction, for comparing the service with `fraud score`."""
    df = result.frame()
    kept = [c for c in ANSWER_COLUMNS if c in df]
    out = df[kept].copy() if len(df) else pd.DataFrame(columns=kept)
    if "transaction_id" in out:
        out["transaction_id"] = out["transaction_id"].astype(str)
    return out


def build_report(result: ReplayResult, offered: int) -> dict[str, Any]:
    df = result.frame()
    report: dict[str, Any] = {
        "offered": offered,
        "answered": len(df),
        "errors": dict(result.errors),
        "retries": result.retries,
        "labels_sent": result.labels_sent,
        "labels_not_found": result.labels_not_found,
        "wall_seconds": round(result.wall_seconds, 3),
        "throughput_tx_per_s": round(len(df) / result.wall_seconds, 1)
        if result.wall_seconds
        else 0.0,
        "stopped_early": result.stopped_early,
    }
    if df.empty:
        return report
    lat = df["latency_ms"].to_numpy()
    report["latency_ms"] = {f"p{q}": round(float(np.percentile(lat, q)), 3) for q in (50, 95, 99)}
    report["decisions"] = df["decision"].value_counts().to_dict()
    if "degraded_reason" in df:
        report["degraded"] = df["degraded_reason"].value_counts().to_dict()
    if "is_fraud" in df:
        fraud = df["is_fraud"] == 1
        flagged = df["decision"].isin(["BLOCK", "REVIEW"])
        report["confusion"] = {
            "fraud_blocked": int((fraud & (df["decision"] == "BLOCK")).sum()),
            "fraud_reviewed": int((fraud & (df["decision"] == "REVIEW")).sum()),
            "fraud_missed": int((fraud & ~flagged).sum()),
            "genuine_blocked": int((~fraud & (df["decision"] == "BLOCK")).sum()),
            "genuine_reviewed": int((~fraud & (df["decision"] == "REVIEW")).sum()),
            "genuine_passed": int((~fraud & ~flagged).sum()),
        }
        n_fraud = int(fraud.sum())
        report["fraud_detection_rate"] = (
            round(float((fraud & flagged).sum() / n_fraud), 4) if n_fraud else None
        )
        report["false_alarm_rate"] = round(
            float((~fraud & flagged).sum() / max(int((~fraud).sum()), 1)), 6
        )
    if "fraud_scenario" in df:
        by = {}
        for code, group in df.groupby("fraud_scenario"):
            flagged = group["decision"].isin(["BLOCK", "REVIEW"])
            by[SCENARIOS.get(int(code), str(code))] = {  # type: ignore[arg-type]
                "transactions": len(group),
                "flagged": int(flagged.sum()),
                "flag_rate": round(float(flagged.mean()), 4),
            }
        report["by_scenario"] = by
    return report


def print_report(report: dict[str, Any], console: Any) -> None:
    """Print the report as rich tables."""
    from rich.table import Table

    head = Table(title="replay")
    head.add_column("measure")
    head.add_column("value", justify="right")
    for key in (
        "offered",
        "answered",
        "throughput_tx_per_s",
        "labels_sent",
        "labels_not_found",
        "fraud_detection_rate",
        "false_alarm_rate",
    ):
        if key in report:
            head.add_row(key, str(report[key]))
    for q, v in report.get("latency_ms", {}).items():
        head.add_row(f"latency {q} (ms)", f"{v:.2f}")
    degraded = sum(report.get("degraded", {}).values())
    if degraded:
        head.add_row("answered degraded (past the deadline)", str(degraded))
    if report["errors"]:
        head.add_row("errors", ", ".join(f"{k}={v}" for k, v in report["errors"].items()))
    if report.get("retries"):
        head.add_row("requests retried (429/503/connection)", str(report["retries"]))
    console.print(head)
    if "confusion" in report:
        c = report["confusion"]
        t = Table(title="decisions vs truth")
        for col in ("", "BLOCK", "REVIEW", "LEGIT"):
            t.add_column(col, justify="right")
        t.add_row(
            "fraud", str(c["fraud_blocked"]), str(c["fraud_reviewed"]), str(c["fraud_missed"])
        )
        t.add_row(
            "genuine",
            str(c["genuine_blocked"]),
            str(c["genuine_reviewed"]),
            str(c["genuine_passed"]),
        )
        console.print(t)
    if "by_scenario" in report:
        t = Table(title="detection by scenario")
        for col in ("scenario", "transactions", "flagged", "flag rate"):
            t.add_column(col, justify="right")
        for name, v in report["by_scenario"].items():
            t.add_row(name, str(v["transactions"]), str(v["flagged"]), f"{v['flag_rate']:.1%}")
        console.print(t)
