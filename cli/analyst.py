"""`fraud backtest` and `fraud export-labels`: the analyst's offline tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from deployments.http.access import env_key_headers

console = Console()


def backtest(
    rules: Annotated[Path, typer.Option(help="Rules file (YAML): rules and lists.")],
    input: Annotated[Path, typer.Option(help="Labelled history (parquet).")],
    model: Annotated[
        Path | None, typer.Option(help="Model directory; default: the one serve_config serves.")
    ] = None,
    skip_days: Annotated[int, typer.Option(min=0, help="Days of window warm-up not judged.")] = 7,
    review_cost: Annotated[float, typer.Option(min=0)] = 3.0,
    chargeback_fee: Annotated[float, typer.Option(min=0)] = 15.0,
    false_block_fraction: Annotated[float, typer.Option(min=0)] = 0.3,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result here.")] = None,
) -> None:
    """What a rule set would have done on history: model alone vs model + rules."""
    from pydantic import ValidationError

    from cli.main import _fail, _write_json
    from cli.progress import progress_bar
    from cli.serve_config import served_model_dir, served_thresholds
    from features.transactions import read_transactions
    from models.card import ModelError
    from models.onnx import load_model
    from policy.costs import CostModel
    from training.backtest import backtest as run_backtest
    from training.backtest import load_policy_file

    try:
        policy = load_policy_file(rules)
        m = load_model(model or served_model_dir())
        history = read_transactions(input)
    except (ValidationError, ModelError, ValueError, FileNotFoundError) as e:
        _fail(f"{e}")
    costs = CostModel(
        review_cost=review_cost,
        chargeback_fee=chargeback_fee,
        false_block_fraction=false_block_fraction,
    )
    with progress_bar("replaying history") as advance:
        result = run_backtest(
            history, m, policy, served_thresholds(m.card), costs, skip_days, progress=advance
        )
    _backtest_table(result)
    if json_out:
        _write_json(json_out, result)


def _backtest_table(r: dict[str, Any]) -> None:
    table = Table(title=f"backtest {r['window'][0]} .. {r['window'][1]} ({r['model_version']})")
    table.add_column("")
    table.add_column("model only", justify="right")
    table.add_column("model + rules", justify="right")
    a, b = r["model_only"], r["with_rules"]
    rows = [
        ("transactions", "{:,}", "transactions"),
        ("flag rate", "{:.3%}", "flag_rate"),
        ("REVIEW", "{:,}", "reviews"),
        ("BLOCK", "{:,}", "blocks"),
        ("frauds caught", "{:,}", "frauds_caught"),
        ("frauds missed", "{:,}", "frauds_missed"),
        ("false alarms", "{:,}", "false_alarms"),
        ("fraud amount caught", "{:,.0f}", "fraud_amount_caught"),
    ]
    for label, fmt, key in rows:
        table.add_row(label, fmt.format(a[key]), fmt.format(b[key]))
    table.add_row("cost", f"{a['cost']['total']:,.0f}", f"{b['cost']['total']:,.0f}")
    console.print(table)
    if r["per_rule"]:
        rules = Table(title="per rule")
        for col in ("rule", "hits", "frauds among hits", "decisions changed"):
            rules.add_column(col, justify="right" if col != "rule" else "left")
        for rule_id, s in r["per_rule"].items():
            rules.add_row(rule_id, f"{s['hits']:,}", f"{s['frauds']:,}", f"{s['changed']:,}")
        console.print(rules)


def export_labels(
    output: Annotated[Path, typer.Option(help="Parquet of labels (one row per transaction).")],
    url: Annotated[str, typer.Option(help="The service.")] = "http://127.0.0.1:8000",
    transactions: Annotated[
        Path | None,
        typer.Option(help="History to merge the labels into (is_fraud set from them)."),
    ] = None,
    training_output: Annotated[
        Path | None, typer.Option(help="With --transactions: the merged training file.")
    ] = None,
    page: Annotated[int, typer.Option(min=1, max=100_000)] = 10_000,
) -> None:
    """Labels the service received (chargebacks and review outcomes), for the next training
    run; optionally merged into a history file that `fraud train` reads."""
    import httpx
    import pandas as pd

    from cli.main import _fail
    from features.transactions import read_transactions

    headers = env_key_headers()
    rows: list[dict[str, Any]] = []
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
            while True:
                r = c.get("/v1/labels", params={"offset": len(rows), "limit": page})
                r.raise_for_status()
                got = r.json()["labels"]
                rows.extend(got)
                if len(got) < page:
                    break
    except httpx.HTTPError as e:
        _fail(f"could not read labels from {url}: {e}")
    labels = pd.DataFrame(rows, columns=["transaction_id", "is_fraud", "source", "labelled_ms"])
    labels["labelled_at"] = pd.to_datetime(labels["labelled_ms"], unit="ms", utc=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    labels.drop(columns="labelled_ms").to_parquet(output, index=False)
    by_source = labels.groupby("source")["is_fraud"].agg(["count", "sum"]).to_dict("index")
    console.print(f"wrote {output}: {len(labels):,} labels {by_source}")
    if transactions is None:
        return
    history = read_transactions(transactions)
    latest = labels.drop_duplicates("transaction_id", keep="last").set_index("transaction_id")
    ids = history["transaction_id"].astype(str)
    known = ids.map(latest["is_fraud"])
    changed = int(((known.notna()) & (known != history["is_fraud"].astype(bool))).sum())
    history["is_fraud"] = known.fillna(history["is_fraud"].astype(bool)).astype("int8")
    target = training_output or transactions.with_name(transactions.stem + "-labelled.parquet")
    history.to_parquet(target, index=False)
    console.print(
        f"wrote {target}: {int(known.notna().sum()):,} of {len(history):,} transactions "
        f"labelled by the service ({changed:,} changed)"
    )
