"""`fraud`: simulate, compute features, train, evaluate and score from the shell."""

from __future__ import annotations

import datetime as dt
import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Real-time card-fraud scoring on Ray: simulate, train, evaluate, score, serve.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()

DEFAULT_MODEL = Path("models/default")


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    console.print(f"wrote {path}")


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=2)


@app.command()
def simulate(
    output: Annotated[
        str,
        typer.Option(
            help="A .parquet file, or a directory or URI (s3://...) for a partitioned table."
        ),
    ] = "data/tx.parquet",
    customers: Annotated[int, typer.Option(min=1, help="Number of cards.")] = 5_000,
    terminals: Annotated[int, typer.Option(min=1, help="Number of terminals.")] = 10_000,
    days: Annotated[int, typer.Option(min=1, help="Days to simulate.")] = 183,
    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD).")] = "2018-04-01",
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same file.")] = 0,
    card_testing_per_day: Annotated[
        int, typer.Option(min=0, help="Cards hit by a card-testing burst per day (scenario 4).")
    ] = 1,
    device_farms_per_day: Annotated[
        int, typer.Option(min=0, help="Bot rings testing 10-40 cards each per day (scenario 5).")
    ] = 0,
    takeovers_per_day: Annotated[
        int, typer.Option(min=0, help="Account takeovers per day (scenario 6).")
    ] = 0,
    cross_border_per_day: Annotated[
        int, typer.Option(min=0, help="Cards used abroad per day (scenario 7).")
    ] = 0,
    handbook: Annotated[
        bool, typer.Option(help="The book's run exactly: scenarios 1-3 only, no card testing.")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(min=1, help="Ray tasks, one part each (the stream is the same for any)."),
    ] = 1,
) -> None:
    """Generate a labelled transaction stream (the handbook's model plus card testing, and
    on request device farms, account takeovers and cross-border fraud), with the fields a
    card gateway sends (merchant category and country, channel, entry mode, BIN country,
    device, IP, email)."""
    from cli.progress import progress_bar
    from features.parts import is_uri
    from simulator.config import SimulationConfig
    from simulator.distributed import generate_distributed
    from simulator.generate import write_parquet

    cfg = SimulationConfig(
        n_customers=customers,
        n_terminals=terminals,
        n_days=days,
        start_date=dt.date.fromisoformat(start),
        seed=seed,
        card_testing_per_day=0 if handbook else card_testing_per_day,
        device_farms_per_day=0 if handbook else device_farms_per_day,
        takeovers_per_day=0 if handbook else takeovers_per_day,
        cross_border_per_day=0 if handbook else cross_border_per_day,
    )
    one_file = output.endswith(".parquet") and not is_uri(output)
    if one_file and workers > 1:
        _fail("--workers > 1 writes a partitioned table: give --output a directory or URI")
    try:
        if one_file:
            with progress_bar("simulating days") as progress:
                stats = write_parquet(cfg, output, progress)
        else:
            label = "simulating days" if workers == 1 else "simulating parts"
            with progress_bar(label) as progress:
                stats = generate_distributed(cfg, output, workers, progress)
    except ValueError as e:  # PartsError among them: a clear message, no traceback
        _fail(str(e))
    console.print(f"wrote {output}: " + json.dumps(stats))


@app.command()
def features(
    input: Annotated[Path, typer.Option(help="Transactions (ours or the handbook's schema).")],
    output: Annotated[Path, typer.Option(help="Parquet file for the feature table.")],
    label_delay_days: Annotated[int, typer.Option(min=1, help="Days until a label is known.")] = 7,
    labels: Annotated[bool, typer.Option(help="Feed is_fraud back as delayed labels.")] = True,
) -> None:
    """Replay history through the feature engine (the code the online actors run)."""
    from cli.progress import progress_bar
    from cli.serve_config import served_engine
    from features.offline import offline_features
    from features.transactions import SchemaError, read_transactions

    try:
        tx = read_transactions(input)
    except (SchemaError, FileNotFoundError) as e:
        _fail(str(e))
    with progress_bar("replaying events") as progress:
        out = offline_features(
            tx,
            served_engine(label_delay_days=label_delay_days),
            use_labels=labels,
            progress=progress,
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    out.to_parquet(output, index=False)
    console.print(f"wrote {len(out):,} rows x {out.shape[1]} columns to {output}")


class TrainEngine(str, Enum):
    ray = "ray"
    xgboost = "xgboost"


@app.command()
def train(
    input: Annotated[Path, typer.Option(help="Labelled transactions to learn from.")],
    output: Annotated[Path, typer.Option(help="Model directory to write.")] = DEFAULT_MODEL,
    engine: Annotated[
        TrainEngine,
        typer.Option(help="ray: Ray Train XGBoostTrainer; xgboost: plain, for comparison."),
    ] = TrainEngine.ray,
    workers: Annotated[int, typer.Option(min=1, help="Ray Train workers.")] = 2,
    rounds: Annotated[int, typer.Option(min=1, help="Boosting rounds.")] = 200,
    delay_days: Annotated[int, typer.Option(min=1, help="Label delay and gap between blocks.")] = 7,
    valid_days: Annotated[int, typer.Option(min=1, help="Validation block length.")] = 7,
    test_days: Annotated[int, typer.Option(min=1, help="Test block length.")] = 7,
    warmup_days: Annotated[int, typer.Option(min=0, help="First days skipped (windows fill).")] = 7,
    review_cost: Annotated[float, typer.Option(min=0, help="Cost of one manual review.")] = 3.0,
    chargeback_fee: Annotated[
        float, typer.Option(min=0, help="Added to a missed fraud's amount.")
    ] = 15.0,
    false_block_fraction: Annotated[
        float, typer.Option(min=0, help="Share of a blocked good payment's amount lost.")
    ] = 0.3,
    review_recall: Annotated[
        float, typer.Option(min=0.01, max=1, help="Share of validation frauds REVIEW catches.")
    ] = 0.8,
    block_precision: Annotated[
        float, typer.Option(min=0.01, max=1, help="Share of validation BLOCKs that are fraud.")
    ] = 0.95,
    expect_flagged: Annotated[
        list[str] | None,
        typer.Option(
            help="A condition in the rule language whose every match on the test block the "
            "model must flag (repeatable): a behaviour check of your own history's patterns."
        ),
    ] = None,
) -> None:
    """Train XGBoost on time blocks; pick the class weight and the REVIEW/BLOCK thresholds
    on validation, recall first; export ONNX after a parity check and behaviour checks; write
    a model card (with the cost-optimal thresholds too, and plots of both)."""
    from policy.costs import CostModel
    from policy.expressions import RuleSyntaxError, parse
    from policy.recall import RecallTarget
    from training.pipeline import TrainOptions, train_model

    for text in expect_flagged or ():  # refused now, not after the training
        try:
            parse(text)
        except RuleSyntaxError as e:
            _fail(f"--expect-flagged {text[:80]!r}: {e}")
    opts = TrainOptions(
        engine=engine.value,
        workers=workers,
        rounds=rounds,
        delay_days=delay_days,
        valid_days=valid_days,
        test_days=test_days,
        warmup_days=warmup_days,
        target=RecallTarget(review_recall=review_recall, block_precision=block_precision),
        costs=CostModel(
            review_cost=review_cost,
            chargeback_fee=chargeback_fee,
            false_block_fraction=false_block_fraction,
        ),
        expect_flagged=tuple(expect_flagged or ()),
    )
    from cli.serve_config import served_engine

    try:
        config = served_engine(label_delay_days=delay_days)
        card = train_model(input, output, opts, config, say=console.print)
    except (ValueError, FileNotFoundError) as e:  # BehaviourError and ParityError included
        _fail(str(e))
    _metrics_table(card.metrics, f"model {card.version}")
    cost = card.cost_thresholds
    if cost is not None:
        console.print(
            f"cost-optimal on validation: REVIEW > {cost.review:.2f}, BLOCK > {cost.block:.2f} "
            f"(cost {cost.cost['total']:,.0f} vs {cost.cost_at_current['total']:,.0f} at the "
            "recall-first ones, which are served by default); serve them with "
            "`thresholds_from_model: true`"
        )
    console.print(
        f"wrote {output} (model.onnx, model.json, model_card.json, thresholds.png, "
        "cost_thresholds.png)"
    )


def _metrics_table(metrics: dict[str, Any], title: str) -> None:
    table = Table(title=title)
    for col in (
        "set",
        "AUC",
        "AP",
        "CP@100",
        "REVIEW recall",
        "REVIEW precision",
        "BLOCK recall",
        "BLOCK precision",
        "BLOCK FPR",
    ):
        table.add_column(col, justify="right")
    for name, m in metrics.items():
        table.add_row(
            name,
            f"{m['auc']:.3f}",
            f"{m['average_precision']:.3f}",
            f"{m['card_precision_at_100']:.3f}",
            f"{m['review']['recall']:.3f}",
            f"{m['review']['precision']:.3f}",
            f"{m['block']['recall']:.3f}",
            f"{m['block']['precision']:.3f}",
            f"{m['block']['false_positive_rate']:.2e}",
        )
    console.print(table)


class Protocol(str, Enum):
    handbook = "handbook"
    model = "model"


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option(help="Labelled transactions.")] = Path(
        "../shared/datasets/handbook/transactions.parquet"
    ),
    protocol: Annotated[
        Protocol,
        typer.Option(help="handbook: the book's two protocols; model: score --model on --data."),
    ] = Protocol.handbook,
    model: Annotated[Path, typer.Option(help="Model directory (protocol model).")] = DEFAULT_MODEL,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write results as JSON.")] = None,
) -> None:
    """Measure AUC, AP and Card Precision@100 the handbook's way."""
    if protocol is Protocol.handbook:
        from training.evaluate import comparison_table, handbook_protocols

        result = handbook_protocols(data, say=console.print)
        table = Table(title="Test results: ours vs the handbook's published numbers")
        for col in ("protocol", "model", "AUC", "AP", "CP@100"):
            table.add_column(col)
        for row in comparison_table(result):
            table.add_row(row[0], row[1], *(f"{v:.3f}" for v in row[2:]))
        console.print(table)
        scenarios = Table(title="Ours per fraud scenario (test; detected at 1 % false positives)")
        for col in ("protocol", "scenario", "frauds", "AUC", "detected"):
            scenarios.add_column(col)
        for name in ("baseline", "model_selection"):
            for scenario, v in result[name]["by_scenario"].items():
                scenarios.add_row(
                    name, scenario, f"{v['frauds']:.0f}", f"{v['auc']:.3f}",
                    f"{v['detected_at_1pct_fpr']:.1%}",
                )  # fmt: skip
        console.print(scenarios)
    else:
        from features.transactions import read_transactions
        from models.onnx import load_model
        from training.metrics import evaluate_scores
        from training.scoring import score_transactions

        m = load_model(model)
        thresholds = m.card.thresholds
        scored = score_transactions(read_transactions(data), m, thresholds)
        result = {
            "model": m.version,
            "data": str(data),
            "all": evaluate_scores(
                scored, scored["score"].to_numpy(), thresholds.review, thresholds.block
            ),
        }
        _metrics_table({"all": result["all"]}, f"{m.version} on {data}")
    if json_out:
        _write_json(json_out, result)


@app.command()
def score(
    input: Annotated[Path, typer.Option(help="Transactions to score, in any order.")],
    output: Annotated[Path, typer.Option(help="Parquet: transaction_id, score, decision, ...")],
    model: Annotated[
        Path | None,
        typer.Option(help="Model directory; default: the one serve_config.yaml serves."),
    ] = None,
    feedback: Annotated[
        Path | None,
        typer.Option(help="Label events (transaction_id, is_fraud, timestamp) fed in time order."),
    ] = None,
    labels: Annotated[
        bool, typer.Option(help="Without --feedback, use is_fraud as labels known after the delay.")
    ] = False,
) -> None:
    """Score a file offline with the same engine and model as the live service."""
    import pandas as pd

    from cli.serve_config import served_engine, served_model_dir, served_thresholds
    from features.transactions import read_transactions
    from models.onnx import load_model
    from training.scoring import score_transactions

    model_dir = model or served_model_dir()
    m = load_model(model_dir)
    fb = pd.read_parquet(feedback) if feedback else None
    out = score_transactions(
        read_transactions(input),
        m,
        served_thresholds(m.card),
        config=served_engine(),
        feedback=fb,
        use_labels=labels,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    out.to_parquet(output, index=False)
    counts = out["decision"].value_counts().to_dict()
    console.print(f"scored {len(out):,} transactions with {m.version}: {counts} -> {output}")


class DemoSource(str, Enum):
    http = "http"
    kafka = "kafka"


class Sink(str, Enum):
    http = "http"
    redis_stream = "redis-stream"
    kafka = "kafka"


@app.command()
def replay(
    input: Annotated[
        str,
        typer.Option(
            help="Transactions to play: a file, or a partitioned table's directory or URI."
        ),
    ],
    url: Annotated[
        str, typer.Option(help="Service base URL; on a cluster, one every node reaches.")
    ] = "http://127.0.0.1:8000",
    rate: Annotated[
        float | None, typer.Option(min=1, help="Transactions/s cap, all lanes.")
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, max=256, help="Lanes; a card stays on one.")
    ] = 8,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Transactions per request.")] = 1,
    label_delay: Annotated[
        str, typer.Option(help="When labels become known, e.g. 7d, 12h.")
    ] = "7d",
    labels: Annotated[bool, typer.Option(help="Send fraud labels to /v1/feedback.")] = True,
    workers: Annotated[
        int, typer.Option(min=1, help="Ray tasks splitting the cards (Ray Job).")
    ] = 1,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N transactions.")] = None,
    max_seconds: Annotated[float | None, typer.Option(min=1, help="Stop after this long.")] = None,
    retry_for: Annotated[
        float,
        typer.Option(min=0, help="Seconds a request is retried on 429/503 or no connection."),
    ] = 30.0,
    report_json: Annotated[Path | None, typer.Option("--json", help="Write the report.")] = None,
    answers_out: Annotated[
        Path | None,
        typer.Option("--answers", help="Parquet: each transaction's score and decision."),
    ] = None,
    id_prefix: Annotated[
        str,
        typer.Option(help="Put before every id: replay a stream again as cards never seen."),
    ] = "",
    sink: Annotated[
        Sink,
        typer.Option(
            help="http: the HTTP API; redis-stream or kafka: the durable stream path "
            "(stream.broker in serve_config.yaml)."
        ),
    ] = Sink.http,
    redis_url: Annotated[
        str, typer.Option(help="redis-stream: the broker.")
    ] = "redis://127.0.0.1:6379/0",
    stream_prefix: Annotated[
        str, typer.Option(help="redis-stream: <prefix>:tx:<p> in, <prefix>:decisions:<p> out.")
    ] = "fraud",
    partitions: Annotated[
        int, typer.Option(min=1, help="redis-stream: as the service's stream.partitions.")
    ] = 4,
    bootstrap_servers: Annotated[
        str, typer.Option(help="kafka: the brokers (as stream.kafka.bootstrap_servers).")
    ] = "127.0.0.1:9092",
    topic_prefix: Annotated[
        str,
        typer.Option(help="kafka: <prefix>.transactions in, <prefix>.decisions out."),
    ] = "fraud",
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="FRAUD_API_KEY", show_default=False, help="A key with the score scope."
        ),
    ] = None,
    deadline_ms: Annotated[
        float | None,
        typer.Option(
            min=1, max=60_000, help="Ask for every answer within this (x-fraud-deadline-ms)."
        ),
    ] = None,
) -> None:
    """Stream transactions to the live service in event-time order, with delayed labels."""
    import asyncio

    import pandas as pd

    from cli.progress import replay_progress
    from features.parts import is_uri
    from features.transactions import read_transactions
    from simulator.replay import ReplayOptions, replay_stream, with_id_prefix
    from simulator.report import answers, build_report, print_report

    delay_days = pd.Timedelta(label_delay).total_seconds() / 86_400
    opts = ReplayOptions(
        url=url,
        concurrency=concurrency,
        batch=batch,
        rate=rate,
        labels=labels,
        label_delay_days=delay_days,
        slice_seconds=min(3600.0, delay_days * 86_400),
        max_seconds=max_seconds,
        retry_for_s=retry_for,
        api_key=api_key,
        id_prefix=id_prefix,
        deadline_ms=deadline_ms,
    )
    tx = read_transactions(input)
    if limit:
        tx = tx.sort_values("timestamp", kind="stable").head(limit)
    if sink is Sink.redis_stream:
        from simulator.stream_replay import StreamReplayOptions, replay_to_stream

        sopts = StreamReplayOptions(
            redis_url=redis_url,
            input_prefix=f"{stream_prefix}:tx",
            results_prefix=f"{stream_prefix}:decisions",
            partitions=partitions,
            labels=labels,
            label_delay_days=delay_days,
            max_seconds=max_seconds,
        )
        with replay_progress(console) as progress:
            result = replay_to_stream(with_id_prefix(tx, id_prefix), sopts, progress)
    elif sink is Sink.kafka:
        from simulator.distributed import replay_distributed
        from simulator.kafka_replay import KafkaReplayOptions, replay_to_kafka

        kopts = KafkaReplayOptions(
            bootstrap_servers=bootstrap_servers,
            input_topic=f"{topic_prefix}.transactions",
            decisions_topic=f"{topic_prefix}.decisions",
            labels=labels,
            label_delay_days=delay_days,
            max_seconds=max_seconds,
            rate=rate / workers if rate else None,
        )
        if workers > 1:
            if limit or id_prefix:
                _fail("--limit and --id-prefix work with --workers 1 only")
            console.print(f"producing {len(tx):,} transactions from {workers} Ray tasks")
            where = input if is_uri(input) else str(Path(input).resolve())
            result = replay_distributed(where, kopts, workers)
        else:
            with replay_progress(console) as progress:
                result = replay_to_kafka(with_id_prefix(tx, id_prefix), kopts, progress)
    elif workers > 1:
        from simulator.distributed import replay_distributed

        if limit:
            _fail("--limit works with --workers 1 only")
        console.print(f"replaying {len(tx):,} transactions on {workers} Ray tasks")
        where = input if is_uri(input) else str(Path(input).resolve())  # tasks run elsewhere
        result = replay_distributed(where, opts, workers)
    else:
        with replay_progress(console) as progress:
            result = asyncio.run(replay_stream(tx, opts, progress))
    report = build_report(result, len(tx))
    print_report(report, console)
    if report_json:
        _write_json(report_json, report)
    if answers_out:
        answers_out.parent.mkdir(parents=True, exist_ok=True)
        answers(result).to_parquet(answers_out, index=False)
        console.print(f"wrote {answers_out}")
    if report["answered"] == 0:
        raise typer.Exit(code=1)


@app.command()
def backfill(
    input: Annotated[
        str,
        typer.Option(help="History: a file, or a partitioned table's directory or URI."),
    ],
    url: Annotated[str, typer.Option(help="Service base URL.")] = "http://127.0.0.1:8000",
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Transactions per request.")] = 500,
    label_delay: Annotated[
        str, typer.Option(help="When a fraud's label became known, e.g. 7d, 12h.")
    ] = "7d",
    labels: Annotated[bool, typer.Option(help="Send is_fraud as delayed labels.")] = True,
    progress_file: Annotated[
        Path | None,
        typer.Option(help="Where progress is kept (default: data/backfill/<input name>.json)."),
    ] = None,
    retry_for: Annotated[
        float,
        typer.Option(min=0, help="Seconds a request is retried on 429/503 or no connection."),
    ] = 60.0,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="FRAUD_API_KEY", show_default=False, help="A key with the admin scope."
        ),
    ] = None,
) -> None:
    """Load a history into the service's card and terminal state, deciding nothing (no
    decision, record or review); resumable: run the same command again after a stop."""
    import asyncio

    import pandas as pd

    from cli.backfill import BackfillError
    from cli.backfill import backfill as send
    from cli.progress import progress_bar
    from features.transactions import SchemaError, read_transactions
    from simulator.replay import ReplayOptions

    try:
        history = read_transactions(input)
    except (SchemaError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    where = progress_file or Path("data/backfill") / f"{Path(input.rstrip('/')).name}.json"
    delay = pd.Timedelta(label_delay).total_seconds() / 86_400 if labels else None
    opts = ReplayOptions(url=url, batch=batch, retry_for_s=retry_for, api_key=api_key)
    try:
        with progress_bar("backfilling") as progress:
            done = asyncio.run(send(history, input, where, opts, delay, progress))
    except BackfillError as e:
        _fail(str(e))
    console.print(
        f"backfilled {done.rows:,} of {done.rows_total:,} transactions: {done.applied:,} "
        f"applied, {done.duplicates:,} already held, {done.conflicts:,} conflicts; "
        f"{done.labels:,} labels ({done.labels_not_found:,} not found); progress in {where}"
    )


@app.command()
def demo(
    input: Annotated[Path, typer.Option(help="Stream to replay.")] = Path("data/demo.parquet"),
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Client lanes.")] = 8,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Transactions per request.")] = 32,
    report_json: Annotated[Path, typer.Option("--json", help="Where to write the report.")] = Path(
        "data/demo-report.json"
    ),
    keep_running: Annotated[
        bool, typer.Option(help="Keep the service up after (console: /dashboard/); Ctrl-C stops.")
    ] = False,
    source: Annotated[
        DemoSource,
        typer.Option(
            help="http: batches to the HTTP API; kafka: through a Kafka broker of the demo's "
            "own (the stream path, exactly once)."
        ),
    ] = DemoSource.http,
) -> None:
    """Start the service (serve run serve_config.yaml), replay INPUT with labels, report, stop."""
    from cli.demo import run_demo

    if not input.exists():
        _fail(f"{input} not found: run 'fraud simulate --output {input}' first")
    report = run_demo(
        input, report_json.parent / "logs", concurrency, batch, keep_running, source.value
    )
    _write_json(report_json, report)


@app.command()
def keygen(
    output: Annotated[Path, typer.Option(help="Key file to write (never overwritten).")] = Path(
        "data/id.key"
    ),
) -> None:
    """Write a new random id key (hex, owner-only): the secret card and terminal ids are
    hashed with. Give every node the same one (`id_key` in serve_config.yaml)."""
    from features.id_key import write_key

    if not write_key(output, exist_ok=True):
        _fail(f"{output} exists: state is keyed by it (docs/security.md, 'Rotating the id key')")
    console.print(f"wrote {output} (mode 0600); FRAUD_ID_KEY=$(cat {output}) passes it on")


def _register() -> None:
    """Commands that live in their own modules (imported lazily by their bodies)."""
    from cli.analyst import backtest, export_labels
    from cli.decisions import decisions_app
    from cli.kafka import kafka_app
    from cli.keys import keys_app
    from cli.models import models_app

    app.command()(backtest)
    app.command("export-labels")(export_labels)
    app.add_typer(models_app, name="models")
    app.add_typer(keys_app, name="keys")
    app.add_typer(decisions_app, name="decisions")
    app.add_typer(kafka_app, name="kafka")


_register()

if __name__ == "__main__":
    app()
