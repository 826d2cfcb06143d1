"""The interpreter's cyclic garbage collector, kept from pausing answers (shards, the desk,
the deciding replicas).

Why: once Ray, NumPy, numba and the engine are loaded and its state is rebuilt, a shard
actor holds about 210,000 objects the collector tracks, nearly all for its whole life, and
every full (generation 2) collection walks all of them: 87-205 ms each, measured in the
card and terminal shards at c=1 on the documented start path, during which the shard
answers nothing. One comes whenever what survived since the last grows by a quarter of it
(Python's rule), so steady traffic meets one every few minutes. `gc.freeze` moves what
exists once a process has started into a generation no collection walks, so a full
collection walks only what was made since (~7,000 objects in the same run). Serve does the
same for its replicas (`RAY_SERVE_FREEZE_GC_ON_STARTUP`); the shards are plain Ray actors.
Cycles among frozen objects are never collected, which costs nothing for objects that live
as long as the process anyway.

After a freeze, what is left to walk is small, so full collections come often: in a replica
at c=1, one every second or so of 3-16 ms (`quiet` below). The desk's held ~170,000 objects
and walked them in 130 ms every ~100 s.
"""

from __future__ import annotations

import gc

YOUNG = 20_000  # container objects made between two young collections (Python's default: 700)


def settle() -> None:
    """Collect once, then keep everything alive now out of later collections. Call it when
    a process has finished starting (modules imported, state loaded), before its traffic."""
    gc.collect()
    gc.freeze()
    quiet()


def quiet() -> None:
    """Collect less often: Python's default runs a full collection after about 70,000 new
    container objects, so a process answering every transaction meets one every second or
    so (3-16 ms each in a replica at c=1); YOUNG makes that about 30 times rarer, and a young
    collection stays cheap (nearly all of a request's objects are freed by reference count
    before it runs)."""
    gc.set_threshold(YOUNG, 10, 10)
