"""A three-host cluster (network namespaces on this machine): `serve deploy` of the cluster
config, the replay as a Ray Job with a 250 ms deadline per request, a worker host killed
under its traffic, then the other worker's link cut and restored (`tests.chaos.cluster`)."""

from __future__ import annotations

from tests.chaos.drill import run_drill


def test_a_host_dies_and_another_goes_silent_under_traffic_and_nothing_is_lost() -> None:
    # Ray places the shard actors (SPREAD is best effort): once in several runs every card
    # shard lands on the head, and the killed worker holds no card state. That is the bed
    # missing its precondition, not the service failing, so the drill runs once more then;
    # every check below applies to the run that counts.
    for _ in range(2):
        status, result = run_drill("tests.chaos.cluster", timeout_s=600)
        print(f"\nhost failure: {result}")
        if result.get("victim") in result.get("card_shards_by_host", {}):
            break
    assert status == 0 and result["ok"], result
    report = result["report"]
    assert report["answered"] == report["offered"] - result["refused_zero_amount"]
    versus = result["online_vs_offline"]
    assert versus["mismatched"] == 0 and versus["compared"] > 0  # every answer with state
    # State after the faults: exactly offline's for every card no degraded answer touched.
    # The others are reported (`after_degraded`): a drill once lost a late step, likely with
    # the replica that held it; late steps are kept in the state store since (BENCHMARKS.md,
    # "Faults").
    assert result["next_per_card_wrong"]["cards"] == 0
    assert result["missing_from_record"] == 0  # every answer in the decision record
    assert result["victim"] in result["card_shards_by_host"]  # it held card state
    assert result["cut"]["gcs_marked_dead_s"] is not None  # Ray noticed the silent host
