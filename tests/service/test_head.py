"""The head node killed under a replay with a 250 ms deadline and restarted at its address,
with GCS fault tolerance on an external Redis (`tests.chaos.head`)."""

from __future__ import annotations

from tests.chaos.drill import run_drill


def test_the_head_dies_under_traffic_and_a_new_one_takes_over_with_nothing_lost() -> None:
    status, result = run_drill("tests.chaos.head", timeout_s=420)
    print(f"\nhead loss: {result}")
    assert status == 0 and result["ok"], result
    assert result["head_host"] not in result["card_shards_by_host"]  # state off the head
    report = result["report"]
    assert report["answered"] == report["offered"] - result["refused_zero_amount"]
    assert result["head"]["gcs_back_s"] is not None  # the new head reloaded the GCS's tables
    assert result["controller_restarted"]  # Serve's controller came back with the app
    versus = result["online_vs_offline"]
    assert versus["mismatched"] == 0 and versus["compared"] > 0
    assert result["next_per_card_wrong"]["cards"] == 0  # every card's state exactly offline's
    assert result["missing_from_record"] == 0
    # The kill landed mid-stream: answers were sent before it, while no head ran, and after.
    phases = result["within_deadline_by_phase"]
    assert {"before", "no_head", "after"} <= set(phases), phases
