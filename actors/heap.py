"""The interpreter's cyclic garbage collector, kept from pausing a shard's answers.

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
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect once, then keep everything alive now out of later collections. Call it when
    a process has finished starting (modules imported, state loaded), before its traffic."""
    gc.collect()
    gc.freeze()
