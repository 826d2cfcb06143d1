"""Keyed id hashing: one hash per id, batch forms equal to per-id ones, one bucket rule,
and digests that say nothing without the key."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from actors.store.backends import IdKeyMismatch, MemoryStore, bind_id_key
from features.groups import buckets, group_by_route
from features.id_key import IdKeyConfig, IdKeyMissing, write_key
from features.ids import OFFLINE, VECTOR_FROM, IdHasher, id_buckets

A = IdHasher(bytes(range(32)))
B = IdHasher(bytes(range(1, 33)))


def test_remembered_terminal_keys_equal_fresh_ones_past_the_cache_bound() -> None:
    ids = [f"term-{i}" for i in range(40_000)]  # more than the cache holds
    hits = A.terminal_keys.cache_info().hits
    for v in ids + ids[-100:] + ids[:100]:  # recent ones are remembered, the first evicted
        assert A.terminal_keys(v) == A.keys(v)
    assert A.terminal_keys.cache_info().hits - hits == 100


def test_ids_hashed_together_equal_ids_hashed_one_by_one() -> None:
    """`keys_many` computes base64 and 64-bit keys on arrays; it must give `keys`'s values
    exactly (state, snapshots and routing are keyed by them)."""
    rng = np.random.default_rng(5)
    printable = [chr(c) for c in range(33, 127)] + ["é", "カ", "🙂"]
    ids = [str(i) for i in range(-5, 1_000)] + [
        "".join(rng.choice(printable, size=int(rng.integers(1, 65)))) for _ in range(3_000)
    ]
    digests, keys = A.keys_many(ids)
    expected = [A.keys(v) for v in ids]
    assert digests == [e[0] for e in expected]
    assert keys.dtype == np.int64 and keys.tolist() == [e[1] for e in expected]
    assert A.keys_many([])[0] == [] and len(A.keys_many([])[1]) == 0
    for n in (1, 2, VECTOR_FROM - 1, VECTOR_FROM, VECTOR_FROM + 1):  # both sides of the switch
        some_digests, some_keys = A.keys_many(ids[:n])
        assert some_digests == digests[:n] and some_keys.tolist() == keys[:n].tolist()
        assert some_keys.dtype == np.int64
    hashes = A.hashes64(ids)  # body hashes are hashed the same way, a batch at a time
    assert hashes.dtype == np.int64 and hashes.tolist() == [A.hash64(v) for v in ids]
    # Offline, string transaction ids are keyed the same way; integer ids are their own key.
    assert A.transaction_keys(np.array(ids, dtype=object)).tolist() == hashes.tolist()
    assert A.transaction_keys(np.arange(3)).tolist() == [0, 1, 2]


def test_shard_hash_is_stable_and_spreads() -> None:
    assert A.shard_of("card-42", 8) == A.shard_of("card-42", 8)
    counts = np.bincount([A.shard_of(f"card-{i}", 8) for i in range(8000)], minlength=8)
    assert counts.min() > 800  # uniform within noise
    keys = A.keys_many(["a", "b", "a", "c", "a"])[1]
    groups = group_by_route(keys, 3, 4096)
    assert sorted(np.concatenate(list(groups.values())).tolist()) == [0, 1, 2, 3, 4]
    assert all(np.all(np.diff(idx) > 0) for idx in groups.values())  # input order kept
    # One rule for every split of ids (stream partitions, replay lanes, job partitions), and
    # shards own contiguous ranges of the key groups it gives.
    cards = [f"card-{i}" for i in range(500)]
    keys = OFFLINE.keys_many(cards)[1]
    assert id_buckets(cards, 8).tolist() == buckets(keys, 8).tolist()
    assert [OFFLINE.shard_of(c, 8) for c in cards] == (buckets(keys, 4096) // 512).tolist()
    salted = id_buckets(cards, 8, salt="worker:")
    assert salted.tolist() != id_buckets(cards, 8).tolist()  # an independent split
    assert salted.tolist() == id_buckets(cards, 8, salt="worker:").tolist()


def test_the_same_id_under_two_keys_gives_unrelated_digests() -> None:
    cards = [f"45395787636{i:05d}" for i in range(2_000)]
    da, ka = A.keys_many(cards)
    db, kb = B.keys_many(cards)
    assert not set(da) & set(db)  # no digest in common
    # About half of the 64 key bits differ: nothing of one digest predicts the other.
    flips = [bin(int(x) ^ int(y)).count("1") for x, y in zip(ka, kb, strict=True)]
    assert 30 < float(np.mean(flips)) < 34
    # Routing differs too: a shard's cards under one key are spread under the other.
    assert not np.array_equal(A.buckets_of(cards, 4), B.buckets_of(cards, 4))
    assert A.key_id != B.key_id and "00010203" not in repr(A)  # the key is never shown


def test_a_card_number_is_not_recovered_from_its_digest_without_the_key() -> None:
    """An attacker holding a digest and the BIN tries every card number under the public
    offline key and under a wrong key: neither finds it (with the right key, it would)."""
    bin6, pan_digest = "453957", A.digest("4539578763621486")
    candidates = [f"{bin6}{i:09d}" for i in range(876_300_000, 876_400_000)]
    candidates = [c + str(check_digit(c)) for c in candidates]
    assert "4539578763621486" in candidates
    for guess in (OFFLINE, B):
        assert pan_digest not in set(guess.keys_many(candidates)[0])
    assert pan_digest in set(A.keys_many(candidates)[0])


def check_digit(partial: str) -> int:
    from features.ids import luhn_valid

    return next(d for d in range(10) if luhn_valid(partial + str(d)))


def test_key_config_reads_the_variable_else_the_file_and_makes_one_only_if_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FRAUD_TEST_KEY", raising=False)
    missing = IdKeyConfig(env="FRAUD_TEST_KEY", file=str(tmp_path / "k"), create=False)
    with pytest.raises(IdKeyMissing, match="fraud keygen"):
        missing.load(tmp_path)
    made = IdKeyConfig(env="FRAUD_TEST_KEY", file=str(tmp_path / "k"), create=True)
    key = made.load(tmp_path)
    assert len(key) == 32 and oct(os.stat(tmp_path / "k").st_mode & 0o777) == "0o600"
    assert made.load(tmp_path) == key == missing.load(tmp_path)  # the same key, kept
    assert not write_key(tmp_path / "k", exist_ok=True)  # never overwritten
    monkeypatch.setenv("FRAUD_TEST_KEY", "ab" * 32)
    assert made.load(tmp_path) == bytes([0xAB]) * 32  # the variable wins
    monkeypatch.setenv("FRAUD_TEST_KEY", "not hex")
    with pytest.raises(IdKeyMissing, match="not hex"):
        made.load(tmp_path)


def test_a_store_keyed_by_another_key_is_refused() -> None:
    store = MemoryStore()
    bind_id_key(store, A.key_id)
    bind_id_key(store, A.key_id)  # the same key again: fine
    with pytest.raises(IdKeyMismatch, match="Rotating the id key"):
        bind_id_key(store, B.key_id)
