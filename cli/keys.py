"""`fraud keys`: make, list and revoke the service's scoped API keys.

Edits the key file the service reads (`access.keys_file`); a running service picks changes
up within a second. A new key is printed once: only its SHA-256 is stored.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from deployments.http.access import Scope, add_key, read_key_file, revoke_key

keys_app = typer.Typer(help="Scoped API keys: add, list, revoke.", no_args_is_help=True)
console = Console()
FileOption = Annotated[
    Path, typer.Option("--file", help="The key file (access.keys_file in serve_config.yaml).")
]
DEFAULT_FILE = Path("data/keys.json")


@keys_app.command("add")
def add(
    key_id: Annotated[str, typer.Argument(help="A name for the key: lower case, digits, - _.")],
    scope: Annotated[list[Scope], typer.Option(help="score | analyst | admin (repeatable).")],
    rate: Annotated[
        str | None, typer.Option(help="Request rate limit, e.g. '2000/second'.")
    ] = None,
    file: FileOption = DEFAULT_FILE,
) -> None:
    """Make a key with these scopes; prints it once."""
    try:
        secret = add_key(file, key_id, set(scope), rate)
    except ValidationError as e:
        first = e.errors()[0]
        console.print(f"[red]error:[/red] {escape(str(first['loc'][0]))}: {escape(first['msg'])}")
        raise typer.Exit(code=2) from None
    except ValueError as e:
        console.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(code=2) from None
    console.print(f"key {key_id} ({', '.join(sorted(s.value for s in scope))}) in {file}:")
    typer.echo(secret)


@keys_app.command("list")
def list_keys(file: FileOption = DEFAULT_FILE) -> None:
    """Every key's id, scopes, rate, creation time and state (never the key)."""
    table = Table("id", "scopes", "rate", "created", "state")
    for k in read_key_file(file).keys:
        created = dt.datetime.fromtimestamp(k.created_ms / 1000, dt.UTC).isoformat(
            timespec="seconds"
        )
        scopes = ", ".join(sorted(s.value for s in k.scopes))
        table.add_row(k.id, scopes, k.rate or "-", created, "revoked" if k.revoked else "active")
    console.print(table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id.")], file: FileOption = DEFAULT_FILE
) -> None:
    """Revoke a key: refused by the running service within a second."""
    try:
        revoke_key(file, key_id)
    except KeyError as e:
        console.print(f"[red]error:[/red] {e.args[0]}")
        raise typer.Exit(code=2) from None
    console.print(f"revoked {key_id}")
