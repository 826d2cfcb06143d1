"""The collector settings a long-lived process takes once started (actors.heap)."""

from __future__ import annotations

import gc

from actors import heap


def test_settle_freezes_what_is_alive_and_collects_less_often() -> None:
    before = gc.get_threshold()
    try:
        held = [[i] for i in range(1_000)]  # containers the collector tracks
        heap.settle()
        assert gc.get_freeze_count() >= len(held)
        assert gc.get_threshold() == (heap.YOUNG, 10, 10)
        assert before[0] < heap.YOUNG
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
