"""The typed contract into the shards: event batches in, answers out, journal operations.

What the scoring pipeline sends a shard is one batch per entity kind (`CardEvents`,
`TerminalEvents`, `LinkEvents`), a frozen dataclass of columns, one row per event; what
comes back is a typed answer (`CardAnswer`, `TerminalAnswer`, `LinkAnswer`). Every batch
and answer has one encoding, `items()` / `from_items()`: its columns in field order, each a
NumPy array of a fixed dtype or a list of digests. The wire's frames carry exactly these
items (`actors.wire`), and the journal stores an applied batch as its tag, its version and
the same items (`journal_record`, `journal_op`), so a column added to a batch is added
here, once.

Client and actor processes both import this module; it imports neither side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import cache
from typing import Annotated, Any, Final, TypeVar, get_args, get_type_hints

import numpy as np

from actors.store.records import RecordFormatError
from features.engine import LABEL, READ, TX

Item = np.ndarray | list[str]
B = TypeVar("B", bound="Columns")
# A batch's field types name each column's kind: an array of one dtype, or digests.
Bools = Annotated[np.ndarray, np.bool_]
Int8 = Annotated[np.ndarray, np.int8]
Int32 = Annotated[np.ndarray, np.int32]
Int64 = Annotated[np.ndarray, np.int64]
Float64 = Annotated[np.ndarray, np.float64]
Text = list[str]  # card, terminal or transaction ids, as keyed digests


@cache
def _dtypes(cls: type[Columns]) -> tuple[tuple[str, Any], ...]:
    """(name, dtype or None for digests) of each column of a batch class, in field order."""
    hints = get_type_hints(cls, include_extras=True)
    return tuple(
        (f.name, None if hints[f.name] == Text else get_args(hints[f.name])[1]) for f in fields(cls)
    )


@dataclass(frozen=True)
class Columns:
    """Rows in columns: every field is a column of the same length (`column`)."""

    def __len__(self) -> int:
        first = getattr(self, fields(self)[0].name)
        return len(first)

    def items(self) -> list[Item]:
        """This batch's one encoding: its columns, in field order."""
        return [getattr(self, f.name) for f in fields(self)]

    @classmethod
    def from_items(cls: type[B], items: Sequence[Any]) -> B:
        """The batch `items()` encoded (from a frame or a journal record): each column
        checked for its kind and length, arrays converted to their field's dtype."""
        specs = _dtypes(cls)  # type: ignore[arg-type]
        if len(items) != len(specs):
            raise ValueError(f"{cls.__name__}: {len(items)} columns, expected {len(specs)}")
        values: list[Item] = []
        for (name, dtype), item in zip(specs, items, strict=True):
            if dtype is None:
                if not isinstance(item, list) or not all(isinstance(v, str) for v in item):
                    raise ValueError(f"{cls.__name__}.{name}: expected a list of digests")
                values.append(item)
            else:
                if not isinstance(item, np.ndarray | list):
                    raise ValueError(f"{cls.__name__}.{name}: expected an array")
                values.append(np.asarray(item, dtype))
        if len({len(v) for v in values}) > 1:
            raise ValueError(f"{cls.__name__}: columns of different lengths")
        return cls(*values)

    def rows(self: B, idx: np.ndarray) -> B:
        """These rows, in this order."""
        picked = idx.tolist()
        return type(self)(*(
            [v[i] for i in picked] if isinstance(v, list) else v[idx] for v in self.items()
        ))  # fmt: skip

    @classmethod
    def joined(cls: type[B], batches: Sequence[B]) -> B:
        """Several batches as one, in order."""
        if len(batches) == 1:
            return batches[0]
        columns = zip(*(b.items() for b in batches), strict=True)
        return cls(*(
            [v for part in parts for v in part]
            if isinstance(parts[0], list) else np.concatenate(parts)
            for parts in columns
        ))  # fmt: skip

    def then(self: B, other: B) -> B:
        """These rows, then `other`'s."""
        return type(self).joined([self, other])


@dataclass(frozen=True)
class TerminalWrite(Columns):
    """Transactions to record in their terminals' state."""

    routes: Int64  # 64-bit keys of the terminal ids: where each goes
    terminal_keys: Text  # the terminal digests that stand for them in state
    times: Int64
    tx_keys: Int64  # the 64-bit transaction keys labels match on

    @classmethod
    def empty(cls) -> TerminalWrite:
        none = np.empty(0, np.int64)
        return cls(none, [], none, none)


@dataclass(frozen=True)
class CardEvents(Columns):
    """Transactions for one card shard: each applied once to its card's state, with the
    terminal write that follows it (`write`), which the shard keeps for a while."""

    tx_ids: Text  # keyed transaction ids: what retries are known by
    bodies: Int64  # keyed hash of each body: a retry must match it
    card_keys: Text
    times: Int64  # ms
    amounts: Float64
    terminal_hashes: Int32  # `features.ids.identity`
    terminal_routes: Int64
    terminal_keys: Text
    tx_keys: Int64

    @classmethod
    def without_writes(
        cls,
        tx_ids: Text,
        bodies: Any,
        card_keys: Text,
        times: Any,
        amounts: Any,
        terminal_hashes: Any,
    ) -> CardEvents:
        """Transactions with no terminal write to keep (benchmarks, tests, old journals)."""
        n = len(tx_ids)
        none = np.zeros(n, np.int64)
        return cls.from_items(
            [tx_ids, bodies, card_keys, times, amounts, terminal_hashes, none, [""] * n, none]
        )

    @property
    def write(self) -> TerminalWrite:
        """Each row's terminal write."""
        return TerminalWrite(self.terminal_routes, self.terminal_keys, self.times, self.tx_keys)


@dataclass(frozen=True)
class TerminalEvents(Columns):
    """One request to a terminal shard, in order: transactions (`TX`) and labels (`LABEL`)
    to apply, then reads (`READ`) that change nothing."""

    kinds: Int8  # features.kernels.TX, LABEL or READ
    terminal_keys: Text
    times: Int64  # ms; a label's is unused
    tx_keys: Int64  # the transaction each row records, labels or reads
    labels: Int8  # a label's value

    @classmethod
    def writes(cls, write: TerminalWrite) -> TerminalEvents:
        n = len(write)
        return cls(
            np.full(n, TX, np.int8), write.terminal_keys, write.times, write.tx_keys,
            np.zeros(n, np.int8),
        )  # fmt: skip

    @classmethod
    def reads(cls, keys: list[str], times: np.ndarray, tx_keys: np.ndarray) -> TerminalEvents:
        n = len(keys)
        return cls(np.full(n, READ, np.int8), keys, times, tx_keys, np.zeros(n, np.int8))

    @classmethod
    def marks(cls, keys: list[str], tx_keys: np.ndarray, values: np.ndarray) -> TerminalEvents:
        """Labels: set the fraud flag of each transaction to its value."""
        n = len(keys)
        return cls(
            np.full(n, LABEL, np.int8), keys, np.zeros(n, np.int64), tx_keys,
            np.asarray(values, np.int8),
        )  # fmt: skip

    def split(self) -> int:
        """Where the reads start (they come after every transaction and label)."""
        reads = self.kinds == READ
        at = int(np.argmax(reads)) if reads.any() else len(self.kinds)
        if not reads[at:].all():
            raise ValueError("reads come after every transaction and label of a request")
        return at


@dataclass(frozen=True)
class LinkEvents(Columns):
    """Transactions for one shard's links (devices, IP addresses, emails, a card's merchant
    countries: `features.spec.LINKS`), each recorded once in its link's state, which
    answers its link features. Terminal shards hold links: the same key groups route them.
    On the wire a link request's first item is `LINK_FRAME` (a terminal request's never
    is a list)."""

    link_keys: Text  # the link digests that stand for them in state
    kinds: Int8  # each link's entity: its index in `features.spec.LINKS`
    times: Int64
    cards: Int32  # `features.ids.identity`
    tx_keys: Int64

    @classmethod
    def from_frame(cls, items: Sequence[Any]) -> LinkEvents:
        return cls.from_items(items[1:])

    def frame(self) -> list[Item]:
        return [list(LINK_FRAME), *self.items()]


LINK_FRAME: Final = ("link",)


@dataclass(frozen=True)
class LinkAnswer(Columns):
    """A link step's answer, row for row: link features (`features.spec.LINK_STATS`), and
    whether each transaction was already recorded (a retry: recorded once)."""

    features: Float64  # (rows, features.spec.LINK_WIDTH)
    held: Bools


@dataclass(frozen=True)
class CardAnswer(Columns):
    """A card shard's answer, row for row: card features, and `actors.actor.dedup.Seen` status."""

    features: Float64  # (rows, features.spec.CARD_WIDTH)
    status: Int8


@dataclass(frozen=True)
class TerminalAnswer(Columns):
    """A terminal shard's answer, row for row: terminal features, and whether each label's
    transaction was held, or each read's already applied."""

    features: Float64  # (rows, features.spec.TERMINAL_WIDTH)
    held: Bools


# -- the journal: a closed union of operations, each tagged and versioned ---------------------
Operation = CardEvents | TerminalEvents | LinkEvents
OPERATIONS: Final[dict[str, tuple[int, type[Operation]]]] = {
    "card": (1, CardEvents),
    "terminal": (1, TerminalEvents),
    "link": (1, LinkEvents),
}
_TAGS: Final[dict[type[Operation], str]] = {cls: tag for tag, (_, cls) in OPERATIONS.items()}
# Records written before the contract was typed: ("tx", *six card columns) and
# ("step", *terminal columns without reads).
_LEGACY: Final = {"tx", "step"}


def journal_record(op: Operation) -> list[Any]:
    """What the journal stores for an applied batch: [tag, version, *items]."""
    tag = _TAGS[type(op)]
    return [tag, OPERATIONS[tag][0], *op.items()]


def journal_op(record: Sequence[Any]) -> Operation:
    """The batch a journal record holds; `RecordFormatError` for a tag or version this build
    does not know (nothing is guessed)."""
    tag = record[0] if record else None
    if tag in _LEGACY:
        return _legacy(record)
    if tag not in OPERATIONS:
        raise RecordFormatError(f"journal: unknown operation {tag!r}")
    version, cls = OPERATIONS[tag]
    if record[1] != version:
        raise RecordFormatError(
            f"journal: {tag} operation version {record[1]!r}, this build reads {version}"
        )
    try:
        return cls.from_items(record[2:])
    except ValueError as e:
        raise RecordFormatError(f"journal: {e}") from e


def _legacy(record: Sequence[Any]) -> Operation:
    if record[0] == "tx":
        return CardEvents.without_writes(*record[1:])
    return TerminalEvents.from_items(record[1:])
