"""The state a shard owns and the one method it exposes per direction of traffic.

A `UserShard` owns the cards whose stable hash maps to it, a `TerminalShard` the terminals.
Each runs the feature engine's store for its keys (no feature logic of its own), remembers
which transactions it applied (a retry gets the first answer and changes nothing), and
journals every request before applying it (`actors.actor.journal.Journaled`), so a restarted
shard rebuilds exactly the state its clients were answered from. Its checkpoints hold the
cards or terminals and dedup entries changed since the last one, so their cost follows the
traffic, not the shard's size.

Ids arrive hashed under the id key (`features.ids.IdHasher`): no card number is ever held or stored.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from actors.actor.dedup import DedupArchive, DedupIndex, Seen
from actors.actor.journal import Journaled, ShardSettings
from actors.actor.layout import Kind, ShardMoved, read_layout
from actors.events import (
    CardAnswer,
    CardEvents,
    Columns,
    Item,
    LinkAnswer,
    LinkEvents,
    Operation,
    TerminalAnswer,
    TerminalEvents,
    TerminalWrite,
    journal_op,
    journal_record,
)
from actors.store.backends import StoreUnavailable
from features.engine import TX
from features.groups import digest_keys, group_of, group_range
from features.spec import CARD_WIDTH, EARLIER, MS_PER_DAY, MS_PER_HOUR, TERMINAL_WIDTH
from features.state import LinkStore, RingStore, TerminalStore, UserStore


def _first_of_each(
    keys: Sequence[Any], status: np.ndarray, body_hashes: np.ndarray
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Positions of the new keys to apply (the first of each), and (copy, first) pairs for
    an id sent twice in one request: the same body is answered as the first (and marked
    `DUPLICATE` in `status`), another body is a `CONFLICT`."""
    fresh = np.flatnonzero(status == Seen.NEW)
    if len(set(keys)) == len(keys):  # the usual case: no id twice in the request
        return fresh, []
    first_of: dict[Any, int] = {}
    firsts, copies = [], []
    for i in fresh.tolist():
        first = first_of.setdefault(keys[i], i)
        if first == i:
            firsts.append(i)
        elif body_hashes[first] == body_hashes[i]:
            status[i] = Seen.DUPLICATE
            copies.append((i, first))
        else:
            status[i] = Seen.CONFLICT
    return np.asarray(firsts, np.int64), copies


RECENT_S = 120.0  # how long a card shard keeps the terminal writes of what it applied


class KeyedShard(Journaled):
    """A shard that owns a range of key groups (`features.groups`) and can hand them to
    the shards of another layout (`actors.actor.layout.ensure_layout`). A shard whose layout the
    store's record does not name for writes starts sealed."""

    # Each ring store's attribute (its entry in a capture): its class, and the engine
    # setting that sizes it. The first is the shard's own kind.
    parts: ClassVar[dict[str, tuple[type[RingStore], str]]]
    events: ClassVar[type[Columns]]  # what `process` takes (`actors.events`)
    dedup: DedupIndex

    def process(self, events: Any) -> Columns:
        raise NotImplementedError

    def _dedup(self, width: int) -> DedupIndex:
        d = self.settings.dedup
        retain = int(d.retain_days * MS_PER_DAY)
        archive = (
            DedupArchive(self.store, self.layout_kind, self.name, retain) if retain > 0 else None
        )
        return DedupIndex(width, int(d.window_hours * MS_PER_HOUR), d.max_entries, archive)

    def _archive(self, capture: dict[str, Any]) -> None:
        self.dedup.archive_capture(capture["dedup"])

    def _checkpoint_due(self) -> bool:
        return self.dedup.waiting()

    def serve(self, items: list[Item]) -> list[Item]:
        """`process` on a wire frame's items (`actors.wire`): one batch in, its answer out."""
        return self.process(self.events.from_items(items)).items()

    def _rows_in(self, op: Operation) -> int:
        return len(op)

    def _record(self, op: Operation) -> Any:
        return journal_record(op)

    def _operation(self, record: Any) -> Operation:
        return journal_op(record)

    def _started(self) -> None:
        self.groups = self.settings.key_groups
        found = read_layout(self.store, self.layout_kind)
        self.sealed = found is not None and not found.serves(self.n_shards)

    @property
    def layout_kind(self) -> Kind:
        return "user" if self.kind == "user" else "terminal"

    def owned_groups(self) -> tuple[int, int]:
        return group_range(self.shard, self.n_shards, self.groups)

    def seal(self) -> int:
        """Take no more writes, and checkpoint whole: what the store then holds is all of
        this shard's state. Returns the last sequence number."""
        with self._lock:
            self.sealed = True
        self.checkpoint()
        return self.seq

    def retire(self) -> None:
        """Seal and delete this shard's state from the store (its groups moved)."""
        with self._lock:
            self.sealed = True
        self.flush()
        self.store.delete(self.name)

    def activate(self) -> None:
        """Take writes: the store's record names this shard's layout."""
        with self._lock:
            self.sealed = False

    def _exported(self, lo: int, hi: int) -> dict[str, Any]:
        """This shard's whole state restricted to key groups [lo, hi)."""
        form = self._capture(full=True)
        out: dict[str, Any] = {}
        for part, (ring_class, _) in self.parts.items():
            rows = form[part]
            mine = group_of(digest_keys(rows["ids"]), self.groups)
            out[part] = ring_class.select(rows, (mine >= lo) & (mine < hi))
        owners = group_of(digest_keys(form["dedup"]["owners"]), self.groups)
        out["dedup"] = DedupIndex.select(form["dedup"], (owners >= lo) & (owners < hi))
        return out

    def take_over(self, old_n: int) -> int:
        """Build this shard's state from its key groups' part of what the `old_n` shards
        of the old layout stored (they are sealed), replacing anything stored under this
        shard's name, and checkpoint it whole. Stays sealed until `activate`. Returns how
        many cards or terminals it now holds."""
        lo, hi = self.owned_groups()
        parts = []
        for j in range(old_n):
            jlo, jhi = group_range(j, old_n, self.groups)
            if jlo < hi and lo < jhi:  # old shard j held some of these groups
                source = SHARDS[self.kind](j, old_n, self.settings, self.store, reader=True)
                parts.append(source._exported(lo, hi))
        with self._lock:
            self.sealed = True
            self.flush()
            self.store.delete(self.name)
            self._init_state()
            form: dict[str, Any] = {
                part: ring_class.concat([p[part] for p in parts], self._capacity(part))
                for part, (ring_class, _) in self.parts.items()
            }
            form["dedup"] = self.dedup.concat([p["dedup"] for p in parts])
            self._load(form)
            self.seq = self.snapshot_seq = 0
            self._deltas = 0
        self.checkpoint()
        rings: RingStore = getattr(self, next(iter(self.parts)))
        return len(rings)

    def _capacity(self, part: str | None = None) -> int:
        """Events kept per id of a part (`engine.user_capacity`, `terminal_capacity`,
        `link_capacity`); the shard's own kind's by default."""
        setting = self.parts[part or next(iter(self.parts))][1]
        capacity: int = getattr(self.settings.engine, setting)
        return capacity


class UserShard(KeyedShard):
    """Card state for one shard: per-card rings of (time, amount, terminal)."""

    kind = "user"
    incremental = True  # checkpoints hold the cards and entries changed since the last
    parts: ClassVar[dict[str, tuple[type[RingStore], str]]] = {
        "users": (UserStore, "user_capacity")
    }
    events = CardEvents

    def _init_state(self) -> None:
        e = self.settings.engine
        self.users = UserStore(e.user_capacity, lateness_ms=e.lateness_ms)
        self.dedup = self._dedup(CARD_WIDTH)
        self.transactions = 0
        self._recent: deque[tuple[float, TerminalWrite]] = deque()

    def process(self, events: CardEvents) -> CardAnswer:
        """Card features and a `Seen` status per transaction, in order.

        New transactions update their card's state; a retry of an applied one returns its
        stored features; an id already used for another body is a conflict (no change).
        The new ones' terminal writes are kept for `RECENT_S` (`recent_writes`).
        """
        answer: CardAnswer = self._submit(events)
        return answer

    def recent_writes(self, seconds: float) -> TerminalWrite:
        """The terminal writes of the transactions applied in the last `seconds` (at most
        `RECENT_S`). Kept in memory, and rebuilt from the journal on a restart: a replica
        that starts sends them again, since one that died may not have."""
        since = time.monotonic() - seconds
        parts = [w for at, w in list(self._recent) if at >= since]
        return TerminalWrite.joined(parts) if parts else TerminalWrite.empty()

    def _keep_recent(self, events: CardEvents, status: np.ndarray) -> None:
        now = time.monotonic()
        new = np.flatnonzero(status == Seen.NEW)
        if len(new) and events.terminal_keys[0]:  # a record from before writes were kept: ""
            self._recent.append((now, events.write.rows(new)))
        while self._recent and self._recent[0][0] < now - RECENT_S:
            self._recent.popleft()

    def _apply(self, op: CardEvents) -> CardAnswer:
        tx_ids, bodies, cards, times = op.tx_ids, op.bodies, op.card_keys, op.times
        status, out = self.dedup.check_many(tx_ids, bodies, times)
        fresh, copies = _first_of_each(tx_ids, status, bodies)
        if len(fresh):
            every = len(fresh) == len(tx_ids)
            slots = self.users.slots_for(cards if every else [cards[i] for i in fresh])
            out[fresh] = self.users.update(
                slots, times[fresh], op.amounts[fresh], op.terminal_hashes[fresh]
            )
            self.dedup.record_many(
                tx_ids if every else [tx_ids[i] for i in fresh],
                bodies[fresh], times[fresh], out[fresh],
                cards if every else [cards[i] for i in fresh],
            )  # fmt: skip
            self.transactions += len(fresh)
        for i, first in copies:
            out[i] = out[first]
        self._keep_recent(op, status)
        return CardAnswer(out, status)

    def _warm(self) -> None:
        none = np.empty(0, np.int64)
        UserStore(8, initial_rows=1).update(none, none, np.empty(0), np.empty(0, np.int32))

    def _capture(self, full: bool) -> dict[str, Any]:
        return {"users": self.users.capture(full), "dedup": self.dedup.capture(full)}

    @classmethod
    def _merge(cls, base: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
        return {
            "users": UserStore.merge(base["users"], delta["users"]),
            "dedup": DedupIndex.merge(base["dedup"], delta["dedup"]),
        }

    def _load(self, form: dict[str, Any]) -> None:
        lateness = self.settings.engine.lateness_ms
        self.users = UserStore.from_form(form["users"], self._capacity(), lateness)
        self.dedup.load(form["dedup"])
        self.transactions = int(self.users.scalars["count_total"][: len(self.users)].sum())

    def stats(self) -> dict[str, Any]:
        return {
            "kind": "user",
            "shard": self.shard,
            "users": len(self.users),
            "transactions": self.transactions,
            "state_bytes": self.users.state_nbytes(),
            "overflow_events": self.users.overflow_total,
            "dedup_entries": len(self.dedup),
            "dedup_hits": self.dedup.hits,
            "dedup_archive_reads": self.dedup.archive_reads,
            "conflicts": self.dedup.conflicts,
            "seq": self.seq,
            "recovered_records": self.replayed,
            "recovery_seconds": self.recovery_seconds,
            **self.checkpoint_stats(),
        }


class TerminalShard(KeyedShard):
    """Terminal state for one shard: per-terminal rings with labels as known so far, and
    the links (devices, IP addresses, emails, a card's merchant countries) whose keys fall
    in the same key groups: one pool of shards for every entity not keyed by card."""

    kind = "terminal"
    incremental = True
    parts: ClassVar[dict[str, tuple[type[RingStore], str]]] = {
        "terminals": (TerminalStore, "terminal_capacity"),
        "links": (LinkStore, "link_capacity"),
    }
    events = TerminalEvents

    def _init_state(self) -> None:
        e = self.settings.engine
        self.terminals = TerminalStore(
            e.terminal_capacity, e.label_delay_ms, lateness_ms=e.lateness_ms
        )
        self.links = LinkStore(e.link_capacity, lateness_ms=e.lateness_ms)
        self.link_events = 0
        self.dedup = self._dedup(TERMINAL_WIDTH)
        self.transactions = 0
        self.labels = 0

    def serve(self, items: list[Item]) -> list[Item]:
        """A wire frame: a link request (`LinkEvents.frame`) or a terminal one."""
        if items and isinstance(items[0], list):
            return self.process_links(LinkEvents.from_frame(items)).items()
        return super().serve(items)

    def process_links(self, events: LinkEvents) -> LinkAnswer:
        """Record each transaction once in its link's state (journaled first, as every
        write) and answer its link features (`features.state.LinkStore.step`)."""
        answer: LinkAnswer = self._submit(events)
        return answer

    def process(self, events: TerminalEvents) -> TerminalAnswer:
        """Transactions (`TX`) get terminal features, once per key; labels (`LABEL`) set
        the label of a held transaction (idempotent); `held` says, for labels, whether the
        transaction was held.

        Reads (`READ`) come last in a request, after its writes, and change nothing: each
        row's features as a transaction at its time would get them (a transaction already
        applied gets its stored ones), and whether it was already applied. Only the writes
        are journaled (a client sends its pending writes with its next reads)."""
        split = events.split()
        if split == 0:
            return self._read(events)
        if split == len(events):
            answer: TerminalAnswer = self._submit(events)
            return answer
        written: TerminalAnswer = self._submit(events.rows(np.arange(split)))
        read = self._read(events.rows(np.arange(split, len(events))))
        return written.then(read)

    def _read(self, events: TerminalEvents) -> TerminalAnswer:
        with self._lock:
            if self.sealed:
                raise ShardMoved(f"{self.name}: its key groups belong to another layout")
            out = self.terminals.read(events.terminal_keys, events.times)
            applied, stored = self.dedup.stored_many(events.tx_keys.tolist(), events.times)
        out[applied] = stored[applied]
        return TerminalAnswer(out, applied)

    def _apply(self, op: TerminalEvents | LinkEvents) -> TerminalAnswer | LinkAnswer:
        if isinstance(op, LinkEvents):
            slots = self.links.slots_for(op.link_keys)
            earlier = np.asarray(EARLIER, np.bool_)[op.kinds]
            features, held = self.links.step(slots, op.times, op.cards, op.tx_keys, earlier)
            self.link_events += int((~held).sum())
            return LinkAnswer(features, held)
        kinds, terminal_keys, times, tx_keys, labels = (
            op.kinds, op.terminal_keys, op.times, op.tx_keys, op.labels
        )  # fmt: skip
        n = len(kinds)
        out = np.zeros((n, TERMINAL_WIDTH), np.float64)
        found = np.zeros(n, np.bool_)
        txs = np.flatnonzero(kinds == TX)  # labels are idempotent: always applied
        keys = tx_keys[txs].tolist()
        no_body = np.zeros(len(txs), np.int64)  # terminal shards key by transaction alone
        status, out[txs] = self.dedup.check_many(keys, no_body, times[txs])
        fresh, copies = _first_of_each(keys, status, no_body)
        keep = kinds != TX
        keep[txs[fresh]] = True
        idx = np.flatnonzero(keep)
        if len(idx):
            slots = self.terminals.slots_for([terminal_keys[i] for i in idx])
            feats, f = self.terminals.step(kinds[idx], slots, times[idx], tx_keys[idx], labels[idx])
            out[idx], found[idx] = feats, f
            sc = self.terminals.scalars
            # A transaction its ring already holds (delivered again after the dedup window,
            # e.g. a starting replica's re-send) was not recorded: not counted either.
            recorded = (kinds[idx] == TX) & ~f
            np.add.at(sc["count_total"], slots[recorded], 1)
            np.add.at(sc["label_total"], slots[kinds[idx] != TX], 1)
            new = txs[fresh]
            new_keys = [keys[j] for j in fresh]
            owners = [terminal_keys[i] for i in new.tolist()]
            self.dedup.record_many(new_keys, no_body[fresh], times[new], out[new], owners)
            self.labels += len(idx) - len(new)
            self.transactions += int(recorded.sum())
        for j, first in copies:
            out[txs[j]] = out[txs[first]]
        return TerminalAnswer(out, found)

    def _warm(self) -> None:
        none = np.empty(0, np.int64)
        e = self.settings.engine
        TerminalStore(8, e.label_delay_ms, initial_rows=1).step(
            np.empty(0, np.int8), none, none, none, np.empty(0, np.int8)
        )
        LinkStore(8, initial_rows=1).step(
            none, none, np.empty(0, np.int32), none, np.empty(0, np.bool_)
        )

    def _capture(self, full: bool) -> dict[str, Any]:
        return {
            "terminals": self.terminals.capture(full),
            "links": self.links.capture(full),
            "dedup": self.dedup.capture(full),
        }

    @classmethod
    def _merge(cls, base: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
        merged = {
            "terminals": TerminalStore.merge(base["terminals"], delta["terminals"]),
            "dedup": DedupIndex.merge(base["dedup"], delta["dedup"]),
        }
        if "links" in delta:  # a checkpoint from before links has none
            links = base.get("links") or _NO_LINKS
            merged["links"] = LinkStore.merge(links, delta["links"])
        return merged

    def _load(self, form: dict[str, Any]) -> None:
        e = self.settings.engine
        self.terminals = TerminalStore.from_form(
            form["terminals"], self._capacity(), e.label_delay_ms, e.lateness_ms
        )
        self.links = LinkStore.from_form(
            form.get("links") or _NO_LINKS, self._capacity("links"), e.lateness_ms
        )
        self.dedup.load(form["dedup"])
        sc, n = self.terminals.scalars, len(self.terminals)
        self.transactions = int(sc["count_total"][:n].sum())
        self.labels = int(sc["label_total"][:n].sum())
        self.link_events = int(self.links.scalars["count_total"][: len(self.links)].sum())

    def stats(self) -> dict[str, Any]:
        return {
            "kind": "terminal",
            "shard": self.shard,
            "terminals": len(self.terminals),
            "transactions": self.transactions,
            "labels": self.labels,
            "links": len(self.links),
            "link_events": self.link_events,
            "state_bytes": self.terminals.state_nbytes() + self.links.state_nbytes(),
            "overflow_events": self.terminals.overflow_total + self.links.overflow_total,
            "dedup_hits": self.dedup.hits,
            "dedup_archive_reads": self.dedup.archive_reads,
            "seq": self.seq,
            "recovered_records": self.replayed,
            "recovery_seconds": self.recovery_seconds,
            **self.checkpoint_stats(),
        }


_NO_LINKS: dict[str, Any] = LinkStore(2, initial_rows=1).capture(full=True)

# The plain class of each kind: an old layout's shard is rebuilt from the store with it.
SHARDS: dict[str, type[KeyedShard]] = {"user": UserShard, "terminal": TerminalShard}

__all__ = ["ShardSettings", "StoreUnavailable", "TerminalShard", "UserShard"]
