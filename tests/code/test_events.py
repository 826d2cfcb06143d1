"""The typed contract into the shards (`actors.events`): one encoding for the wire and the
journal, checked columns, a closed and versioned set of journal operations."""

from __future__ import annotations

import numpy as np
import pytest

from actors.actor.shards import TerminalShard, UserShard
from actors.events import (
    CardEvents,
    TerminalAnswer,
    TerminalEvents,
    TerminalWrite,
    journal_op,
    journal_record,
)
from actors.store import records
from actors.store.backends import MemoryStore
from actors.store.records import RecordFormatError
from actors.wire import OK, decode, encode
from features.ids import OFFLINE

T0 = 1_600_000_000_000


def _card(n: int, start: int = 0) -> CardEvents:
    ids = [OFFLINE.keys(f"ev-tx-{start + i}")[0] for i in range(n)]
    cards = [OFFLINE.keys(f"ev-card-{i % 2}")[0] for i in range(n)]
    terminals = [OFFLINE.terminal_keys(f"ev-term-{i % 3}")[0] for i in range(n)]
    return CardEvents(
        ids, np.arange(start, start + n, dtype=np.int64), cards,
        T0 + 60_000 * np.arange(start, start + n, dtype=np.int64), np.linspace(5.0, 80.0, n),
        np.arange(n, dtype=np.int32), np.arange(n, dtype=np.int64) + 7, terminals,
        np.arange(start, start + n, dtype=np.int64) + 1000,
    )  # fmt: skip


def _same(a: CardEvents | TerminalEvents, b: CardEvents | TerminalEvents) -> None:
    assert type(a) is type(b)
    for x, y in zip(a.items(), b.items(), strict=True):
        if isinstance(x, list):
            assert x == y
        else:
            assert isinstance(y, np.ndarray) and x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)


def test_a_batch_crosses_the_wire_and_the_journal_in_one_encoding() -> None:
    card = _card(5)
    _, items = decode(encode(OK, card.items())[4:])
    _same(CardEvents.from_items(items), card)
    stored = records.decode(records.encode(journal_record(card)))
    assert stored[:2] == ["card", 1]
    _same(journal_op(stored), card)
    reads = TerminalEvents.writes(card.write).then(
        TerminalEvents.reads(card.terminal_keys[:2], card.times[:2], card.tx_keys[:2])
    )
    _same(journal_op(records.decode(records.encode(journal_record(reads)))), reads)
    assert reads.split() == 5


def test_columns_are_checked_by_name_kind_and_length() -> None:
    items = _card(3).items()
    with pytest.raises(ValueError, match="9 columns, expected 5"):
        TerminalEvents.from_items(items)
    with pytest.raises(ValueError, match=r"CardEvents\.card_keys: expected a list of digests"):
        CardEvents.from_items([*items[:2], np.zeros(3), *items[3:]])
    with pytest.raises(ValueError, match="different lengths"):
        CardEvents.from_items([*items[:3], np.zeros(4, np.int64), *items[4:]])
    with pytest.raises(ValueError, match="reads come after"):
        TerminalEvents.reads(["a"], np.zeros(1), np.zeros(1)).then(
            TerminalEvents.writes(TerminalWrite(np.zeros(1), ["b"], np.zeros(1), np.zeros(1)))
        ).split()


def test_rows_join_and_answers_keep_their_dtypes() -> None:
    card = _card(6)
    picked = card.rows(np.array([4, 1]))
    assert picked.tx_ids == [card.tx_ids[4], card.tx_ids[1]]
    assert picked.times.tolist() == [card.times[4], card.times[1]]
    _same(CardEvents.joined([card.rows(np.arange(3)), card.rows(np.arange(3, 6))]), card)
    answer = TerminalAnswer.from_items([np.zeros((2, 7)), [1, 0]])
    assert answer.held.dtype == np.bool_ and answer.features.shape == (2, 7)


def test_an_unknown_operation_or_version_is_refused_not_guessed() -> None:
    record = journal_record(_card(1))
    with pytest.raises(RecordFormatError, match="unknown operation 'cards'"):
        journal_op(["cards", *record[1:]])
    with pytest.raises(RecordFormatError, match="version 2, this build reads 1"):
        journal_op([record[0], 2, *record[2:]])
    with pytest.raises(RecordFormatError, match="columns"):
        journal_op(record[:-1])


def test_journals_written_before_the_typed_contract_replay() -> None:
    """Records of the old tuple form ("tx", six card columns) and ("step", five terminal
    columns) rebuild the same state as the typed ones."""
    store = MemoryStore()
    card = _card(4)
    old = ["tx", *card.items()[:6]]
    store.append("user-0-of-1", 1, records.encode(old))
    writes = TerminalEvents.writes(card.write)
    store.append("terminal-0-of-1", 1, records.encode(["step", *writes.items()]))
    users, terminals = UserShard(0, 1, {}, store), TerminalShard(0, 1, {}, store)
    twin_users, twin_terminals = UserShard(0, 1, {}), TerminalShard(0, 1, {})
    twin_users.process(card)
    twin_terminals.process(writes)
    assert users.replayed == terminals.replayed == 1
    later = _card(2, start=10)
    a, b = users.process(later), twin_users.process(later)
    np.testing.assert_array_equal(a.features, b.features)
    reads = TerminalEvents.reads(later.terminal_keys, later.times, later.tx_keys)
    np.testing.assert_array_equal(
        terminals.process(reads).features, twin_terminals.process(reads).features
    )
    # the old form kept no writes: only the new batch's are held
    assert users.recent_writes(60).tx_keys.tolist() == later.tx_keys.tolist()


def test_a_restarted_card_shard_still_holds_the_writes_it_journaled() -> None:
    """The writes a card shard keeps for a starting replica are rebuilt from its journal."""
    store = MemoryStore()
    shard = UserShard(0, 1, {}, store)
    card = _card(4)
    shard.process(card)
    shard.process(card.rows(np.array([0])))  # a retry: kept once
    again = UserShard(0, 1, {}, store).recent_writes(60)
    assert again.tx_keys.tolist() == card.tx_keys.tolist()
    assert again.terminal_keys == card.terminal_keys
