"""Folding an actor's incremental checkpoints into a full one, in a process of its own.

Decoding a whole checkpoint, merging and encoding it again are long calls into msgpack and
NumPy that hold the interpreter lock: run in the actor's process they would stall its
requests for as long. `python -m actors.actor.compactor` reads one job (JSON on stdin), opens the
store from its config, folds and writes the full checkpoint, and prints the sequence number
it covers; the actor's checkpoint writer waits for it with the lock released.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter

from actors.store import records
from actors.store.backends import StoreConfig

TIMEOUT_S = 900.0
NICENESS = 10


class CompactJob(BaseModel):
    """What the child needs: the actor's class (by import path), name and store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actor: str  # "module:Class", a `Journaled` subclass
    name: str
    epoch: int | None = None  # the actor's incarnation (`StateStore.fence`)
    state: dict[str, Any]  # the `state:` config the actor opened its store from
    repo_root: str


def compact(job: CompactJob) -> int:
    """Fold `job.name`'s checkpoints into one full checkpoint; the sequence it covers (0
    when there is nothing to fold)."""
    module, _, cls_name = job.actor.partition(":")
    actor = getattr(importlib.import_module(module), cls_name)
    store = TypeAdapter(StoreConfig).validate_python(job.state).open(Path(job.repo_root))
    stored = store.checkpoints(job.name)
    form = actor._fold(stored)
    if form is None or not stored.deltas:
        return 0
    store.checkpoint(job.name, stored.seq, records.encode(form), full=True, epoch=job.epoch)
    return stored.seq


def run_child(job: CompactJob) -> int:
    """Run `compact` in a new interpreter and wait for it; raises if it failed."""
    done = subprocess.run(
        [sys.executable, "-m", "actors.actor.compactor"],
        input=job.model_dump_json().encode(),
        capture_output=True,
        timeout=TIMEOUT_S,
        cwd=job.repo_root,
        check=False,
    )
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"compactor for {job.name} exited {done.returncode}: {tail}")
    return int(json.loads(done.stdout)["seq"])


def main() -> None:
    os.nice(NICENESS)  # background work: the node's serving processes come first
    job = CompactJob.model_validate_json(sys.stdin.buffer.read())
    print(json.dumps({"seq": compact(job)}))


if __name__ == "__main__":
    main()
