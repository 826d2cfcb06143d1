"""`fraud decisions`: read the decision record (every decision, LEGIT included).

Reads the record's files directly (`decision_record.path` in serve_config.yaml: a folder or
an s3:// / gs:// URI), so it works while the service is down, on any machine that reaches
the same storage.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from actors.paths import REPO_ROOT
from actors.store.decisions import DecisionRecordError, DecisionStore, rows

decisions_app = typer.Typer(help="The decision record: export it.", no_args_is_help=True)
console = Console()
FORMATS = (".parquet", ".csv", ".jsonl")


def _instant(value: str | None, option: str) -> int | None:
    """Unix ms of an ISO date or date-time (UTC unless it names a zone)."""
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        console.print(f"[red]error:[/red] {option}: not an ISO date or date-time")
        raise typer.Exit(code=2) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


@decisions_app.command("export")
def export(
    output: Annotated[Path, typer.Option(help=f"The file to write: {', '.join(FORMATS)}.")],
    since: Annotated[
        str | None, typer.Option(help="Decided at or after (ISO date/time, UTC).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Decided before (ISO date/time, UTC).")] = None,
    path: Annotated[
        str, typer.Option(help="The record (decision_record.path): a folder or a URI.")
    ] = "data/decisions",
) -> None:
    """Decisions made in [since, until), oldest first, with their model version,
    thresholds, score, rules, reasons and degraded flag."""
    if output.suffix not in FORMATS:
        console.print(f"[red]error:[/red] --output: the name must end in one of {FORMATS}")
        raise typer.Exit(code=2)
    since_ms, until_ms = _instant(since, "--since"), _instant(until, "--until")
    try:
        table = DecisionStore.at(path, REPO_ROOT).read(since_ms, until_ms)
    except (DecisionRecordError, OSError) as e:
        console.print(f"[red]error:[/red] --path: the record cannot be read ({type(e).__name__})")
        raise typer.Exit(code=2) from None
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, output)
    elif output.suffix == ".csv":
        import pyarrow as pa
        import pyarrow.csv as pacsv

        flat = table.set_column(
            table.schema.get_field_index("rules"),
            "rules",
            pa.array([";".join(r or []) for r in table.column("rules").to_pylist()], pa.string()),
        )
        pacsv.write_csv(flat, output)
    else:
        with output.open("w") as out:
            for row in rows(table):
                out.write(json.dumps(row) + "\n")
    mix = table.group_by("decision").aggregate([("decision", "count")]).to_pylist()
    counts = {m["decision"]: m["decision_count"] for m in mix}
    degraded = table.num_rows - table.column("degraded_reason").null_count
    console.print(f"wrote {output}: {table.num_rows:,} decisions {counts}, {degraded:,} degraded")
