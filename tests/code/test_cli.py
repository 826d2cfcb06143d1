"""The `fraud` command line, end to end on a tiny stream: simulate -> train -> evaluate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from cli.main import app
from cli.serve_config import user_config
from deployments.model.scorer import ScorerConfig
from features.spec import HANDBOOK_FEATURES

REPO = Path(__file__).resolve().parents[2]

runner = CliRunner()


def run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_help_lists_every_command() -> None:
    out = run("--help")
    for cmd in ("simulate", "features", "train", "evaluate", "score", "backtest", "models"):
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
    card = json.loads((model / "model_card.json").read_text())
    cost = card["cost_thresholds"]
    assert 0 < cost["review"] <= cost["block"] < 1 and (model / "cost_thresholds.png").exists()
    assert cost["cost"]["total"] <= cost["cost_at_current"]["total"]  # the optimum is no worse

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - id: burst\n"
        "    when: tx_count_1d >= 6 and amount > 50\n"
        "    action: REVIEW\n"
        "lists:\n"
        "  block_terminals: ['0', '1']\n"
    )
    bt = tmp_path / "backtest.json"
    run("backtest", "--rules", str(rules), "--input", str(tx), "--model", str(model),
        "--json", str(bt))  # fmt: skip
    result = json.loads(bt.read_text())
    alone, ruled = result["model_only"], result["with_rules"]
    assert ruled["reviews"] + ruled["blocks"] >= alone["reviews"] + alone["blocks"]
    assert result["per_rule"]["list:block_terminals"]["hits"] > 0
    assert ruled["frauds_caught"] + ruled["frauds_missed"] == alone["frauds"]
    rules.write_text("rules:\n  - id: bad\n    when: amt > 3\n    action: BLOCK\n")
    bad = runner.invoke(app, ["backtest", "--rules", str(rules), "--input", str(tx)])
    assert bad.exit_code == 2 and "unknown name 'amt'" in " ".join(bad.output.split())

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


def test_models_promote_rollback_and_shadow_edit_the_config(tmp_path: Path) -> None:
    config = tmp_path / "serve_config.yaml"
    shutil.copy(REPO / "serve_config.yaml", config)
    other = tmp_path / "other-model"
    shutil.copytree(REPO / "models" / "default", other)
    run("models", "promote", str(other), "--config", str(config))
    text = config.read_text()
    assert "# `serve run serve_config.yaml`" in text  # comments survive the edit
    scorer = user_config("ModelScorer", config)
    assert scorer["model_dir"] == str(other) and scorer["previous_model_dir"] == "models/default"
    run("models", "shadow", "models/default", "--config", str(config))
    assert user_config("ModelScorer", config)["shadow_model_dir"] == "models/default"
    run("models", "rollback", "--config", str(config))
    scorer = user_config("ModelScorer", config)
    assert scorer["model_dir"] == "models/default" and scorer["previous_model_dir"] == str(other)
    run("models", "shadow", "--off", "--config", str(config))
    assert "shadow_model_dir" not in user_config("ModelScorer", config)
    ScorerConfig(**user_config("ModelScorer", config))  # what the deployment will accept
    bad = runner.invoke(app, ["models", "promote", str(tmp_path / "nope"), "--config", str(config)])
    assert bad.exit_code == 2 and "not a model directory" in " ".join(bad.output.split())


def test_stopping_the_service_leaves_no_haproxy_behind(tmp_path: Path) -> None:
    """Serve's HAProxy runs in a process group of its own (its manager actor's), so the
    SIGINT to `serve run`'s group does not reach it; one that outlives the service holds
    its ports against the next start. `stop_service` ends the ones under it."""
    import subprocess
    import sys
    import time

    import psutil
    from rich.console import Console

    from cli.demo import stop_service

    haproxy = tmp_path / "haproxy"  # a stand-in by name: it only sleeps
    shutil.copy(shutil.which("sleep") or "/bin/sleep", haproxy)
    script = (
        "import subprocess, time; "
        f"subprocess.Popen(['{haproxy}', '60'], start_new_session=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.monotonic() + 10
    while not (kids := psutil.Process(proc.pid).children()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [k.name() for k in kids] == ["haproxy"]
    stop_service(proc, Console(quiet=True))
    psutil.wait_procs(kids, timeout=5)
    assert not kids[0].is_running()
