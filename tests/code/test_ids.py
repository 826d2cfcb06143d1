"""Stable id hashing: one hash per id, batch forms equal to per-id ones, one bucket rule."""

from __future__ import annotations

import numpy as np

from deployments.scoring.pipeline import group_by_route
from features.ids import (
    id_buckets,
    id_keys,
    id_keys_many,
    shard_of,
    stable_hash64,
    stable_hashes64,
    terminal_id_keys,
    transaction_keys,
)


def test_remembered_terminal_keys_equal_fresh_ones_past_the_cache_bound() -> None:
    ids = [f"term-{i}" for i in range(40_000)]  # more than the cache holds
    hits = terminal_id_keys.cache_info().hits
    for v in ids + ids[-100:] + ids[:100]:  # recent ones are remembered, the first evicted
        assert terminal_id_keys(v) == id_keys(v)
    assert terminal_id_keys.cache_info().hits - hits == 100


def test_ids_hashed_together_equal_ids_hashed_one_by_one() -> None:
    """`id_keys_many` computes base64 and 64-bit keys on arrays; it must give `id_keys`'s
    values exactly (state, snapshots and routing are keyed by them)."""
    rng = np.random.default_rng(5)
    printable = [chr(c) for c in range(33, 127)] + ["é", "カ", "🙂"]
    ids = [str(i) for i in range(-5, 1_000)] + [
        "".join(rng.choice(printable, size=int(rng.integers(1, 65)))) for _ in range(3_000)
    ]
    digests, keys = id_keys_many(ids)
    expected = [id_keys(v) for v in ids]
    assert digests == [e[0] for e in expected]
    assert keys.dtype == np.int64 and keys.tolist() == [e[1] for e in expected]
    assert id_keys_many([])[0] == [] and len(id_keys_many([])[1]) == 0
    hashes = stable_hashes64(ids)  # body hashes are hashed the same way, a batch at a time
    assert hashes.dtype == np.int64 and hashes.tolist() == [stable_hash64(v) for v in ids]
    # Offline, string transaction ids are keyed the same way; integer ids are their own key.
    assert transaction_keys(np.array(ids, dtype=object)).tolist() == hashes.tolist()
    assert transaction_keys(np.arange(3)).tolist() == [0, 1, 2]


def test_shard_hash_is_stable_and_spreads() -> None:
    assert shard_of("card-42", 8) == shard_of("card-42", 8)
    counts = np.bincount([shard_of(f"card-{i}", 8) for i in range(8000)], minlength=8)
    assert counts.min() > 800  # uniform within noise
    keys = id_keys_many(["a", "b", "a", "c", "a"])[1]
    groups = group_by_route(keys, 3)
    assert sorted(np.concatenate(list(groups.values())).tolist()) == [0, 1, 2, 3, 4]
    assert all(np.all(np.diff(idx) > 0) for idx in groups.values())  # input order kept
    # One rule for every split: shards, stream partitions, replay lanes, job partitions.
    cards = [f"card-{i}" for i in range(500)]
    assert id_buckets(cards, 8).tolist() == [shard_of(c, 8) for c in cards]
    salted = id_buckets(cards, 8, salt="worker:")
    assert salted.tolist() != id_buckets(cards, 8).tolist()  # an independent split
    assert salted.tolist() == id_buckets(cards, 8, salt="worker:").tolist()
