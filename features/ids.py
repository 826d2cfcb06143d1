"""Keyed, stable hashes of ids: the same value in every process, machine and run that holds
the same secret key, and useless to anyone without it.

Python's built-in `hash()` is salted per process, so two ingress replicas would route the
same card to different shards; blake2b is not. The key matters because a card number has
little entropy: with a known 6-digit BIN and its Luhn digit, an unkeyed digest is reversed
by brute force in minutes. With a 256-bit key (`features.id_key`), it cannot be.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
import pandas as pd

from features.groups import DEFAULT_GROUPS, buckets, shard_of

MIN_KEY_BYTES, MAX_KEY_BYTES = 16, 64  # blake2b takes keys of at most 64 bytes
_B64 = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", np.uint8)
_DIGIT_RUN = re.compile(r"\d{13,19}")
TERMINAL_CACHE = 1 << 15
# From this many ids on, `keys_many` hashes in one array pass (measured crossover ~40-60 ids:
# `python -m benchmarks access` prints both per id).
VECTOR_FROM = 48


class IdHasher:
    """Every hash the service keys by an id, under one secret key.

    - `keys(v)`: the digest that stands for the id in state (22 url-safe base64 characters)
      and a signed 64-bit key (its first 8 bytes) for routing, label matching and the
      32-bit terminal identity;
    - `hash64(v)`: a 64-bit hash of any text (request bodies, offline transaction ids);
    - `redact(v)`: an id kept as given unless it holds what looks like a card number.
    """

    def __init__(self, key: bytes) -> None:
        if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
            raise ValueError(f"id key: {len(key)} bytes, need {MIN_KEY_BYTES}-{MAX_KEY_BYTES}")
        self._key = key
        # A fingerprint safe to show and store: names the key without revealing it.
        self.key_id = hashlib.blake2b(b"key-id", key=key, digest_size=6).hexdigest()
        self.terminal_keys = lru_cache(maxsize=TERMINAL_CACHE)(self.keys)
        """`keys` remembered for terminal ids, which come back all the time: a dictionary
        lookup (~0.05 us) instead of a blake2b and a base64 (~1.1 us); bounded (~10 MB).
        Only for terminals: a card id may be a card number, and no card number is held past
        its request; transaction ids are unique and would only evict the rest."""

    def __repr__(self) -> str:  # never the key itself
        return f"IdHasher(key_id={self.key_id})"

    def subkey(self, purpose: str) -> bytes:
        """A 256-bit key for another use (signing dashboard sessions), derived from this one:
        every replica holding the id key derives the same, and it reveals nothing of it."""
        return hashlib.blake2b(purpose.encode(), key=self._key, digest_size=32).digest()

    def _digest16(self, value: str) -> bytes:
        return hashlib.blake2b(value.encode("utf-8"), digest_size=16, key=self._key).digest()

    def keys(self, value: str) -> tuple[str, int]:
        """(digest in state, signed 64-bit key) of one id."""
        digest = self._digest16(value)
        return (
            base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"),
            int.from_bytes(digest[:8], "little", signed=True),
        )

    def keys_many(self, values: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """`keys` of many ids at once, equal to it id by id: only the blake2b runs per id;
        the base64 text and the 64-bit keys are computed on the whole array."""
        n = len(values)
        if n == 0:
            return [], np.empty(0, np.int64)
        if n < VECTOR_FROM:  # the array steps cost ~30 us whatever n: one id costs ~1.2 us
            pairs = [self.keys(v) for v in values]
            return [p[0] for p in pairs], np.fromiter((p[1] for p in pairs), np.int64, n)
        h, key = hashlib.blake2b, self._key
        joined = b"".join([h(v.encode(), digest_size=16, key=key).digest() for v in values])
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

    def digest(self, value: str) -> str:
        """The digest standing for an id in state. Base64 rather than hex: a hex digest often
        holds 16 decimal digits in a row, which looks like a card number to scanners."""
        return self.keys(value)[0]

    def key64(self, value: str) -> int:
        """The signed 64-bit key of one id."""
        return self.keys(value)[1]

    def hash64(self, value: str) -> int:
        """A signed 64-bit hash of any text."""
        digest = hashlib.blake2b(value.encode("utf-8"), digest_size=8, key=self._key).digest()
        return int.from_bytes(digest, "little", signed=True)

    def hashes64(self, values: Iterable[str]) -> np.ndarray:
        """`hash64` of each value, the digests read as one array (not an int per value)."""
        h, key = hashlib.blake2b, self._key
        digests = b"".join([h(v.encode("utf-8"), digest_size=8, key=key).digest() for v in values])
        return np.frombuffer(digests, "<i8").astype(np.int64)

    def shard_of(self, value: str, n_shards: int, groups: int = DEFAULT_GROUPS) -> int:
        """The shard that owns an id among `n_shards`: its key group's owner."""
        return int(shard_of(np.array([self.key64(value)], np.int64), groups, n_shards)[0])

    def buckets_of(self, ids: Sequence[str], n: int, salt: str = "") -> np.ndarray:
        """`buckets` of raw ids. A `salt` gives an independent split over the same ids (a
        job's workers, then each worker's lanes), so the two splits do not line up."""
        return buckets(self.keys_many([salt + v for v in ids] if salt else ids)[1], n)

    def transaction_keys(self, values: np.ndarray | pd.Series) -> np.ndarray:
        """64-bit keys that find a transaction again when its label arrives. Integer ids are
        their own key; other ids are hashed. Keys only need to agree within one engine."""
        arr = np.asarray(values)
        if arr.dtype.kind in "iu":
            return arr.astype(np.int64, copy=False)
        return self.hashes64(str(v) for v in arr)

    def redact(self, value: str) -> str:
        """`value`, or `redacted:<digest>` if it holds what looks like a card number (a
        Luhn-valid run of 13-19 digits). For ids the service keeps as given (transaction ids
        in the decision log and review queue): a client that sends a card number there does
        not get it stored. The mapping is stable, so lookups by the same id still find it."""
        return "redacted:" + self.digest(value) if holds_pan(value) else value

    def redact_many(self, values: list[str]) -> list[str]:
        """`redact` of each value; one regex scan over all of them first, since most batches
        hold no run of 13+ digits at all (ids hold no whitespace, so runs cannot join up)."""
        if _DIGIT_RUN.search(" ".join(values)) is None:
            return values
        return [self.redact(v) for v in values]


OFFLINE = IdHasher(b"fraud-offline-replay-not-a-secret")
"""The hasher of what is never stored or served: offline replay's terminal identities and
label keys, the simulator's stream partitions and replay lanes. Its key is public, so
nothing it hashes may leave the process that hashed it."""


def id_buckets(ids: Sequence[str], n: int, salt: str = "") -> np.ndarray:
    """`OFFLINE.buckets_of`: how the simulator splits a stream it produces (the service
    routes again, under its own key, when the transactions arrive)."""
    return OFFLINE.buckets_of(ids, n, salt)


def as_id_strings(values: Iterable[object]) -> list[str]:
    """Ids as the service sees them: strings (integers are written in decimal)."""
    return [str(v) for v in values]


def identity(keys64: np.ndarray) -> np.ndarray:
    """The 32-bit identity a ring records of another entity's id (a card's history its
    terminals, a link's history its cards): the low 32 bits of the id's 64-bit key. The
    one definition, used online and offline."""
    return np.asarray(keys64, dtype=np.int64).astype(np.int32)


def holds_pan(value: str) -> bool:
    """Whether `value` holds what looks like a card number: a Luhn-valid run of 13-19
    digits."""
    return any(luhn_valid(run) for run in _DIGIT_RUN.findall(value))


def luhn_valid(digits: str) -> bool:
    """The Luhn check card numbers pass (and most other digit runs fail)."""
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0
