"""The `fraud` command line, end to end on a tiny stream: simulate -> train -> evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from cli.main import app
from features.names import HANDBOOK_FEATURES

runner = CliRunner()


def run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_help_lists_every_command() -> None:
    out = run("--help")
    for cmd in ("simulate", "features", "train", "evaluate", "score"):
        assert cmd in out


def test_simulate_train_evaluate_score(tmp_path: Path) -> None:
    tx = tmp_path / "tx.parquet"
    run(
        "simulate",
        "--output",
        str(tx),
        "--customers",
        "600",
        "--terminals",
        "1200",
        "--days",
        "30",
        "--seed",
        "2",
        "--card-testing-per-day",
        "2",
    )
    assert len(pd.read_parquet(tx)) > 20_000

    feats = tmp_path / "features.parquet"
    run("features", "--input", str(tx), "--output", str(feats))
    table = pd.read_parquet(feats)
    assert {"transaction_id", *HANDBOOK_FEATURES} <= set(table.columns)

    model = tmp_path / "m"
    out = run(
        "train",
        "--input",
        str(tx),
        "--output",
        str(model),
        "--engine",
        "xgboost",
        "--rounds",
        "40",
        "--delay-days",
        "3",
        "--valid-days",
        "4",
        "--test-days",
        "4",
        "--warmup-days",
        "2",
    )
    assert "ONNX parity" in out and (model / "model.onnx").exists()

    report = tmp_path / "eval.json"
    run(
        "evaluate",
        "--protocol",
        "model",
        "--model",
        str(model),
        "--data",
        str(tx),
        "--json",
        str(report),
    )
    assert json.loads(report.read_text())["all"]["auc"] > 0.8

    scores = tmp_path / "scores.parquet"
    run("score", "--input", str(tx), "--output", str(scores), "--model", str(model))
    s = pd.read_parquet(scores)
    assert list(s.columns[:3]) == ["transaction_id", "score", "decision"]
    assert set(s["decision"]) <= {"LEGIT", "REVIEW", "BLOCK"}
    assert len(s) == len(table)


def test_bad_input_file_gets_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"transaction_id": [1], "amount": [3.0]}).to_parquet(bad)
    result = runner.invoke(app, ["features", "--input", str(bad), "--output", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "lacks column(s)" in result.output and "timestamp" in result.output
