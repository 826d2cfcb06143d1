"""How journaled actors write records and checkpoints to their store: msgpack behind a
magic and a format version, with NumPy arrays as one typed extension.

Nothing read back is unpickled or evaluated, so a writable store does not mean code
execution in the service. msgpack yields only nil, bools, numbers, text, bytes, lists and
maps. An array comes back from a dtype on an allow list (bool, integer or float), a shape
and its raw bytes, and its size is checked. A record of another format version is refused,
never guessed at, and so is a record in the retired pickle format, with what to do.
"""

from __future__ import annotations

import math
from typing import Any, Final

import msgpack
import numpy as np

MAGIC: Final = b"FRS"
VERSION: Final = 1
_ARRAY: Final = 1  # msgpack extension code of an ndarray
# The dtypes a stored array may name, by their exact text: nothing else is parsed (the
# shards' socket takes the same list, `actors.wire`).
DTYPES: Final = {
    d.str: d
    for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
              np.uint64, np.float16, np.float32, np.float64)
    for d in (np.dtype(t), np.dtype(t).newbyteorder())
}  # fmt: skip
_PICKLE: Final = b"\x80"  # every pickle of protocol 2 and later starts with PROTO


class RecordFormatError(RuntimeError):
    """A stored record this build does not read. Nothing was applied."""


RETIRED_PICKLE = (
    "this state store holds records in the retired pickle format, which the service no "
    "longer reads (unpickling what a store holds would let whoever can write to the store "
    "run code in the service). Start on new state: point `state.path` (sqlite) or "
    "`state.prefix` (redis) at a new location; card and terminal windows refill within "
    "30 days, as after an id key rotation (docs/security.md). Keep the old store until then."
)


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.str not in DTYPES:
            raise TypeError(f"cannot store an array of dtype {value.dtype}")
        a = np.ascontiguousarray(value)
        body = msgpack.packb([a.dtype.str, list(a.shape), a.tobytes()], use_bin_type=True)
        return msgpack.ExtType(_ARRAY, body)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store a {type(value).__name__}")


def _array(code: int, data: bytes) -> np.ndarray:
    if code != _ARRAY:
        raise RecordFormatError(f"stored record: unknown extension type {code}")
    dtype_str, shape, raw = msgpack.unpackb(data, raw=False)
    dtype = DTYPES.get(dtype_str) if isinstance(dtype_str, str) else None
    if dtype is None:
        raise RecordFormatError(f"stored record: array dtype {dtype_str!r} is not allowed")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise RecordFormatError(f"stored record: bad array shape {shape!r}")
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise RecordFormatError("stored record: array size does not match its shape")
    out: np.ndarray = np.frombuffer(raw, dtype).reshape(shape).copy()  # writable, owned
    return out


def encode(value: Any) -> bytes:
    """One record: the magic, the format version, then msgpack."""
    body: bytes = msgpack.packb(value, default=_default, use_bin_type=True)
    return MAGIC + bytes([VERSION]) + body


def decode(data: bytes) -> Any:
    """A record `encode` wrote; `RecordFormatError` for anything else."""
    if data[:1] == _PICKLE:
        raise RecordFormatError(RETIRED_PICKLE)
    if data[: len(MAGIC)] != MAGIC or len(data) <= len(MAGIC):
        raise RecordFormatError("stored record: not a state record of this service")
    version = data[len(MAGIC)]
    if version != VERSION:
        raise RecordFormatError(
            f"stored record: format version {version}, this build reads {VERSION}; run the "
            "release that wrote this state, or start on new state"
        )
    try:
        return msgpack.unpackb(
            memoryview(data)[len(MAGIC) + 1 :], ext_hook=_array, raw=False,
            strict_map_key=False,
        )  # fmt: skip
    except (ValueError, msgpack.UnpackException) as e:
        raise RecordFormatError(f"stored record: unreadable ({e})") from e
