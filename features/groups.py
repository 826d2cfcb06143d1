"""Key groups: the unit in which card and terminal state is owned, kept and moved.

As in Flink, every id hashes to one of a fixed number of key groups, and each shard owns a
contiguous range of them. Changing the number of shards moves whole key groups; the
number of groups never changes for a state store, so an id's group never does.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import numpy as np

DEFAULT_GROUPS = 4096


def buckets(keys: np.ndarray, n: int) -> np.ndarray:
    """The bucket in [0, n) of each signed 64-bit id key: the one rule behind shards, stream
    partitions, replay lanes and job partitions, uniform and stable across processes."""
    return (np.asarray(keys, np.int64) & np.int64(0x7FFF_FFFF_FFFF_FFFF)) % n


def group_of(keys: np.ndarray, groups: int) -> np.ndarray:
    """The key group of each signed 64-bit id key."""
    return buckets(keys, groups)


def owner_of(group: np.ndarray, groups: int, n_shards: int) -> np.ndarray:
    """The shard that owns each key group among `n_shards`: contiguous ranges."""
    return np.asarray(group, np.int64) * n_shards // groups


def shard_of(keys: np.ndarray, groups: int, n_shards: int) -> np.ndarray:
    """The shard that owns each id key: its key group's owner."""
    return owner_of(group_of(keys, groups), groups, n_shards)


def group_range(shard: int, n_shards: int, groups: int) -> tuple[int, int]:
    """The key groups [lo, hi) shard `shard` of `n_shards` owns (`owner_of`'s inverse)."""
    return -(-shard * groups // n_shards), -(-(shard + 1) * groups // n_shards)


def digest_keys(digests: Sequence[str]) -> np.ndarray:
    """The 64-bit id keys behind state digests (`IdHasher.keys`: a digest is the base64 of
    16 hashed bytes, whose first 8 are the key), so state can be split by key group
    without the id key."""
    raw = b"".join(base64.urlsafe_b64decode(d + "==")[:8] for d in digests)
    return np.frombuffer(raw, "<i8").astype(np.int64)


def group_by_route(routes: np.ndarray, n_shards: int, groups: int) -> dict[int, np.ndarray]:
    """Row indices per shard (the owner of each 64-bit key's key group), each in input
    order."""
    shard = shard_of(routes, groups, n_shards)
    if len(shard) == 1:  # a single transaction: no sort and split (~25 us of fixed cost)
        return {int(shard[0]): np.zeros(1, np.intp)}
    order = np.argsort(shard, kind="stable")
    bounds = np.flatnonzero(np.diff(shard[order])) + 1
    return {int(shard[g[0]]): g for g in np.split(order, bounds) if len(g)}
