"""`fraud models`: list model directories, promote one, roll back, run one in shadow.

Models are directories (`model.onnx`, `model.json`, `model_card.json`) with a version in the
card. Promotion is a config change: these commands edit the ModelScorer's `user_config` in
serve_config.yaml (comments kept) and `serve deploy` applies it as an in-place hot swap.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from ruamel.yaml import YAML

from actors.paths import REPO_ROOT
from cli.serve_config import SERVE_CONFIG
from models.card import CARD_FILE, ModelDir, ModelError

models_app = typer.Typer(
    help="Model lifecycle: list, promote, rollback, shadow.", no_args_is_help=True
)
console = Console()
ConfigOption = Annotated[Path, typer.Option(help="The Serve config to edit.")]
ApplyOption = Annotated[bool, typer.Option(help="Run `serve deploy` on the edited config.")]


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=2)


def _yaml() -> YAML:
    y = YAML()
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _scorer_config(doc: Any) -> Any:
    for application in doc.get("applications", []):
        if application.get("name") != "fraud":
            continue
        for d in application.get("deployments", []):
            if d.get("name") == "ModelScorer":
                if d.get("user_config") is None:
                    d["user_config"] = {}
                return d["user_config"]
    raise ValueError("the config has no ModelScorer deployment in an application named 'fraud'")


def _checked(model_dir: Path) -> str:
    """The directory as the config should name it, after checking the model loads."""
    from models.onnx import load_model

    path = model_dir if model_dir.is_absolute() else Path.cwd() / model_dir
    try:
        version = load_model(path).version
    except ModelError as e:
        _fail(str(e))
    console.print(f"{model_dir}: model {version} loads")
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path.resolve())


def _edit(config: Path, change: Any, apply: bool) -> None:
    y = _yaml()
    doc = y.load(config.read_text())
    try:
        change(_scorer_config(doc))
    except ValueError as e:
        _fail(str(e))
    with config.open("w") as f:
        y.dump(doc, f)
    console.print(f"updated {config}")
    if apply:
        # This environment's `serve`, whether or not it is on PATH (a venv not activated).
        serve = Path(sys.executable).parent / "serve"
        subprocess.run([str(serve), "deploy", str(config)], check=True)
    else:
        console.print(f"apply with: serve deploy {config}   (an in-place hot swap)")


@models_app.command("list")
def list_models(
    root: Annotated[list[Path], typer.Option(help="Folders holding model directories.")] = [  # noqa: B006
        Path("models"),
        Path("data/models"),
    ],
    config: ConfigOption = SERVE_CONFIG,
) -> None:
    """Model directories with their version, test metrics and cost-optimal thresholds."""
    served = _scorer_config(_yaml().load(config.read_text())) if config.exists() else {}
    roles = {
        str(served.get(k) or ""): role
        for k, role in (("model_dir", "live"), ("shadow_model_dir", "shadow"),
                        ("previous_model_dir", "previous"))
    }  # fmt: skip
    table = Table(title="models")
    for col in ("directory", "version", "role", "test AUC", "test AP", "cost thresholds"):
        table.add_column(col)
    for folder in root:
        for card_file in sorted(folder.glob(f"*/{CARD_FILE}")):
            try:
                card = ModelDir(card_file.parent).read_card()
            except ModelError as e:
                console.print(f"[yellow]skipped[/] {e}")
                continue
            test = card.metrics.get("test", {})
            cost = card.cost_thresholds
            table.add_row(
                str(card_file.parent),
                card.version,
                roles.get(str(card_file.parent), ""),
                f"{test.get('auc', float('nan')):.3f}",
                f"{test.get('average_precision', float('nan')):.3f}",
                f"{cost.review:.2f} / {cost.block:.2f}" if cost else "–",
            )
    console.print(table)


@models_app.command()
def promote(
    model_dir: Annotated[Path, typer.Argument(help="The model directory to serve.")],
    config: ConfigOption = SERVE_CONFIG,
    apply: ApplyOption = False,
) -> None:
    """Serve MODEL_DIR; the model it replaces is kept as `previous_model_dir` for rollback."""
    target = _checked(model_dir)

    def change(uc: Any) -> None:
        if uc.get("model_dir") != target:
            uc["previous_model_dir"] = uc.get("model_dir")
        uc["model_dir"] = target

    _edit(config, change, apply)


@models_app.command()
def rollback(config: ConfigOption = SERVE_CONFIG, apply: ApplyOption = False) -> None:
    """Serve `previous_model_dir` again (the current one becomes the previous)."""

    def change(uc: Any) -> None:
        if not uc.get("previous_model_dir"):
            raise ValueError("no previous_model_dir in the config: nothing to roll back to")
        uc["model_dir"], uc["previous_model_dir"] = uc["previous_model_dir"], uc["model_dir"]

    _edit(config, change, apply)


@models_app.command()
def shadow(
    model_dir: Annotated[
        Path | None, typer.Argument(help="Model to run in shadow; omit with --off.")
    ] = None,
    off: Annotated[bool, typer.Option(help="Stop shadow scoring.")] = False,
    config: ConfigOption = SERVE_CONFIG,
    apply: ApplyOption = False,
) -> None:
    """Score live traffic with a second model too, without affecting decisions; its agreement
    with the live model shows in /v1/live and /v1/stats."""
    if (model_dir is None) == (not off):
        _fail("give a model directory, or --off")
    target = None if off else _checked(model_dir)  # type: ignore[arg-type]

    def change(uc: Any) -> None:
        if target is None:
            uc.pop("shadow_model_dir", None)
        else:
            uc["shadow_model_dir"] = target

    _edit(config, change, apply)
