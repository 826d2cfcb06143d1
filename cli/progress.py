"""A rich progress bar usable as the `(done, total)` callback the engine and simulator take."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@contextmanager
def replay_progress(console: object) -> Iterator[Callable[[int, int, dict[str, int]], None]]:
    """A bar with throughput and the running decision counts."""
    import time

    with Progress(
        TextColumn("[bold]replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} tx/s  {task.fields[mix]}"),
        TimeElapsedColumn(),
        console=console,  # type: ignore[arg-type]
    ) as bar:
        task = bar.add_task("replay", total=None, rate="-", mix="")
        start = time.perf_counter()

        def update(done: int, total: int, counts: dict[str, int]) -> None:
            rate = done / max(time.perf_counter() - start, 1e-9)
            mix = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f}", mix=mix)

        yield update
