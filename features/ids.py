"""Stable hashes of ids: the same value in every process, machine and run.

Python's built-in `hash()` is salted per process, so two ingress replicas would route the
same card to different shards; blake2b is not.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
import pandas as pd


def stable_hash64(value: str) -> int:
    """A signed 64-bit blake2b hash of a string id."""
    digest = hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def stable_hashes64(values: Iterable[str]) -> np.ndarray:
    """`stable_hash64` of each value, the digests read as one array (not an int per value)."""
    h = hashlib.blake2b
    digests = b"".join([h(v.encode("utf-8"), digest_size=8).digest() for v in values])
    return np.frombuffer(digests, "<i8").astype(np.int64)


def buckets(keys: np.ndarray, n: int) -> np.ndarray:
    """The bucket in [0, n) of each signed 64-bit id key (`id_keys`): the one rule behind
    shards, stream partitions, replay lanes and job partitions, uniform and stable across
    processes."""
    return (np.asarray(keys, np.int64) & np.int64(0x7FFF_FFFF_FFFF_FFFF)) % n


def id_buckets(ids: Sequence[str], n: int, salt: str = "") -> np.ndarray:
    """`buckets` of raw ids. A `salt` gives an independent split over the same ids (a job's
    workers, then each worker's lanes), so the two splits do not line up."""
    return buckets(id_keys_many([salt + v for v in ids] if salt else ids)[1], n)


def shard_of(key: str, n_shards: int) -> int:
    """The shard that owns `key` among `n_shards` (`buckets` of its key)."""
    return int(buckets(np.array([id_keys(key)[1]], np.int64), n_shards)[0])


def as_id_strings(values: Iterable[object]) -> list[str]:
    """Ids as the service sees them: strings (integers are written in decimal)."""
    return [str(v) for v in values]


def transaction_keys(values: np.ndarray | pd.Series) -> np.ndarray:
    """64-bit keys that find a transaction again when its label arrives.

    Integer ids are their own key; other ids are hashed. Keys only need to agree within one
    engine (a label is matched to a transaction of the same run), never across runs.
    """
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    return stable_hashes64(str(v) for v in arr)


_PERSON = b"fraud-id"
_B64 = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", np.uint8)


def id_keys(value: str) -> tuple[str, int]:
    """One blake2b-128 of an id, giving everything the service keys by it: the digest that
    stands for the id in state (`id_digest`) and a signed 64-bit key (its first 8 bytes) for
    routing (`shard_of`), label matching and the 32-bit terminal identity
    (`terminal_identity`)."""
    digest = hashlib.blake2b(value.encode("utf-8"), digest_size=16, person=_PERSON).digest()
    return (
        base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"),
        int.from_bytes(digest[:8], "little", signed=True),
    )


def id_keys_many(values: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """`id_keys` of many ids at once, equal to it id by id: only the blake2b runs per id;
    the base64 text and the 64-bit keys are computed on the whole array (~0.5 us of its
    ~1.1 us per id)."""
    n = len(values)
    if n == 0:
        return [], np.empty(0, np.int64)
    h = hashlib.blake2b
    joined = b"".join([h(v.encode(), digest_size=16, person=_PERSON).digest() for v in values])
    raw = np.frombuffer(joined, np.uint8).reshape(n, 16)
    # Base64 of 16 bytes: five 3-byte groups give 20 characters, the last byte 2 more.
    groups = raw[:, :15].reshape(n, 5, 3).astype(np.uint32)
    word = (groups[..., 0] << 16) | (groups[..., 1] << 8) | groups[..., 2]
    text = np.empty((n, 22), np.uint8)
    for j, shift in enumerate((18, 12, 6, 0)):
        text[:, j:20:4] = _B64[(word >> shift) & 63]
    last = raw[:, 15]
    text[:, 20], text[:, 21] = _B64[last >> 2], _B64[(last & 3) << 4]
    digests = text.view("S22").ravel().astype("U22").tolist()
    return digests, raw[:, :8].copy().view("<i8").ravel().astype(np.int64)


@lru_cache(maxsize=1 << 15)
def terminal_id_keys(value: str) -> tuple[str, int]:
    """`id_keys` remembered for terminal ids, which come back all the time: a dictionary
    lookup (~0.05 us) instead of a blake2b and a base64 (~1.1 us); bounded (~10 MB at
    32,768 ids). Only for terminals: a card id may be a card number, and no card number is
    held past its request; transaction ids are unique and would only evict the rest."""
    return id_keys(value)


def terminal_identity(keys64: np.ndarray) -> np.ndarray:
    """The 32-bit terminal identity a card's history records: the low 32 bits of the
    terminal's 64-bit id key. The one definition, used online and offline."""
    return np.asarray(keys64, dtype=np.int64).astype(np.int32)


def id_digest(value: str) -> str:
    """A 128-bit blake2b digest (22 url-safe base64 characters) standing for an id in state.

    The online shards key cards, terminals and transactions by this, so a card number sent
    as an id never reaches memory, snapshots, logs or the state store. Base64 rather than
    hex: a hex digest often contains 16 decimal digits in a row, which looks like a card
    number to scanners.
    """
    return id_keys(value)[0]


_DIGIT_RUN = re.compile(r"\d{13,19}")


def luhn_valid(digits: str) -> bool:
    """The Luhn check card numbers pass (and most other digit runs fail)."""
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def redact_pan(value: str) -> str:
    """`value`, or `redacted:<digest>` if it holds what looks like a card number (a
    Luhn-valid run of 13-19 digits). For ids the service keeps as given (transaction ids
    in the decision log and review queue): a client that sends a card number there does not
    get it stored. The mapping is stable, so lookups by the same id still find it."""
    for run in _DIGIT_RUN.findall(value):
        if luhn_valid(run):
            return "redacted:" + id_digest(value)
    return value


def redact_pans(values: list[str]) -> list[str]:
    """`redact_pan` of each value; one regex scan over all of them first, since most batches
    hold no run of 13+ digits at all (ids hold no whitespace, so runs cannot join up)."""
    if _DIGIT_RUN.search(" ".join(values)) is None:
        return values
    return [redact_pan(v) for v in values]
