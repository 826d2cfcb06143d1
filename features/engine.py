"""The feature engine: stateless features plus the user and terminal stores.

Online, a card shard (`actors.actor.shards.UserShard`) calls `UserStore.update` and a
terminal shard calls `TerminalStore.step`, and the ingress calls `assemble`; offline,
`FeatureEngine` holds both stores in one process and `features.offline` drives it over
history. Same code either way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from features import kernels
from features.config import EngineConfig
from features.gateway import Gateway
from features.ids import OFFLINE, identity
from features.spec import (
    CARD_COLUMNS,
    EARLIER,
    LINK_WIDTH,
    LINKS,
    MS_PER_DAY,
    MS_PER_HOUR,
    N_FEATURES,
    TERMINAL_COLUMNS,
    TRANSACTION_COLUMNS,
    link_columns,
)
from features.state import LinkStore, TerminalStore, UserStore

TX = 0
LABEL = 1
READ = kernels.READ  # a transaction's terminal features, not recorded (the answer path's)


def stateless_features(
    times_ms: np.ndarray, amounts: np.ndarray, flags: np.ndarray | None = None
) -> np.ndarray:
    """Amount, weekend (Sat/Sun) and night (hour <= 6), all in UTC, then the gateway's
    `flags` (`Gateway.flags`; missing when not given)."""
    times_ms = np.asarray(times_ms, dtype=np.int64)
    days = times_ms // MS_PER_DAY
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    hour = (times_ms - days * MS_PER_DAY) // MS_PER_HOUR
    if flags is None:
        flags = np.full((len(times_ms), 2), np.nan)
    return np.column_stack(
        [np.asarray(amounts, dtype=np.float64), weekday >= 5, hour <= 6, flags]
    ).astype(np.float64)


def assemble(
    stateless: np.ndarray,
    user: np.ndarray,
    terminal: np.ndarray,
    links: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Put the parts into model-input order (`features.spec.FEATURE_NAMES`). `links`: each
    link event's transaction row, entity index and `LINK_STATS` columns; a transaction's
    link features without an event stay missing (NaN), never zero."""
    out = np.empty((stateless.shape[0], N_FEATURES), dtype=np.float64)
    out[:, _TRANSACTION] = stateless
    out[:, _CARD] = user
    out[:, _TERMINAL] = terminal
    out[:, _LINK] = np.nan
    if links is not None and len(links[0]):
        rows, kinds, values = links
        for e in set(kinds.tolist()):  # the entities present, not all of them
            columns, slots = _LINK_COLUMNS[e]
            mine = kinds == e
            out[np.ix_(rows[mine], columns)] = values[mine][:, slots]
    return out


# Column index arrays made once: a list index is converted on every call, which costs
# more than the copy itself on the answer path's one-row batches.
_TRANSACTION, _CARD, _TERMINAL = (
    np.asarray(c, np.intp) for c in (TRANSACTION_COLUMNS, CARD_COLUMNS, TERMINAL_COLUMNS)
)
_LINK_COLUMNS = [
    (np.asarray(c, np.intp), np.asarray(s, np.intp)) for c, s in map(link_columns, LINKS)
]
_LINK = np.concatenate([c for c, _ in _LINK_COLUMNS])


def _distinct(values: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Each value's index among the distinct values, and those values in first-seen order."""
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(v, len(index)) for v in values), np.int64, len(values))
    return codes, list(index)


def needs_earlier(kinds: np.ndarray) -> np.ndarray:
    """Which link events (by entity index) need the card's earlier events counted."""
    out: np.ndarray = np.asarray(EARLIER, np.bool_)[np.asarray(kinds, np.int64)]
    return out


def terminal_hashes(terminal_ids: Sequence[str]) -> np.ndarray:
    """The 32-bit terminal identity a user's history records (from the id's one digest)."""
    keys = OFFLINE.keys_many(terminal_ids)[1]
    return identity(keys)


def first_card(times_ms: np.ndarray, amounts: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Card features of these transactions as if each were its card's first (`hashes`: each
    one's terminal identity). A degraded answer scores a card whose state did not answer in
    time as this: the model was trained on first transactions, while a whole group of
    missing values sends the committed model's trees down branches no training row took (it
    blocked 99.98 % of handbook transactions without card state; BENCHMARKS.md, "Degraded
    answers")."""
    users = UserStore(2)
    return users.update(
        users.slots_for([str(i) for i in range(len(times_ms))]),
        np.asarray(times_ms, np.int64),
        np.asarray(amounts, np.float64),
        np.asarray(hashes, np.int32),
    )


def first_terminal(times_ms: np.ndarray, label_delay_ms: int) -> np.ndarray:
    """Terminal features of transactions at these times as if each were its terminal's
    first: a terminal never seen (`first_card`'s reason, for a late terminal shard)."""
    fresh = [str(i) for i in range(len(times_ms))]
    return TerminalStore(2, label_delay_ms).read(fresh, np.asarray(times_ms, np.int64))


class FeatureEngine:
    """User and terminal state in one process: the offline driver and the tests use this."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        c = self.config
        self.users = UserStore(c.user_capacity, lateness_ms=c.lateness_ms)
        self.terminals = TerminalStore(
            c.terminal_capacity, c.label_delay_ms, lateness_ms=c.lateness_ms
        )
        self.links = LinkStore(c.link_capacity, lateness_ms=c.lateness_ms)

    def link_step(
        self, gateway: Gateway, user_ids: Sequence[str], times_ms: np.ndarray, tx_keys: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Record these transactions' link events (`Gateway.links`), in order; returns
        what `assemble` takes as `links`."""
        rows, kinds, texts = gateway.links(user_ids)
        if not len(rows):
            return rows, kinds, np.empty((0, LINK_WIDTH))
        links, link_ids = _distinct(texts)  # each id hashed once, however often it recurs
        cards, card_ids = _distinct([user_ids[i] for i in rows.tolist()])
        values, _ = self.links.step(
            self.links.slots_for(OFFLINE.keys_many(link_ids)[0])[links],
            np.asarray(times_ms, np.int64)[rows],
            identity(OFFLINE.keys_many(card_ids)[1])[cards],
            np.asarray(tx_keys, np.int64)[rows],
            needs_earlier(kinds),
        )  # fmt: skip
        return rows, kinds, values

    def transact(
        self,
        user_ids: Sequence[str],
        terminal_ids: Sequence[str],
        times_ms: np.ndarray,
        amounts: np.ndarray,
        tx_keys: np.ndarray,
        gateway: Gateway | None = None,
    ) -> np.ndarray:
        """Features of transactions given in arrival order; each then joins the state."""
        times_ms = np.asarray(times_ms, dtype=np.int64)
        amounts = np.asarray(amounts, dtype=np.float64)
        user = self.users.update(
            self.users.slots_for(user_ids), times_ms, amounts, terminal_hashes(terminal_ids)
        )
        n = len(times_ms)
        terminal, _ = self.terminals.step(
            np.zeros(n, np.int8),
            self.terminals.slots_for(terminal_ids),
            times_ms,
            np.asarray(tx_keys, dtype=np.int64),
            np.zeros(n, np.int8),
        )
        gateway = gateway or Gateway.absent(n)
        links = self.link_step(gateway, user_ids, times_ms, tx_keys)
        return assemble(
            stateless_features(times_ms, amounts, gateway.flags()), user, terminal, links
        )

    def label(
        self, terminal_ids: Sequence[str], tx_keys: np.ndarray, labels: np.ndarray
    ) -> np.ndarray:
        """Record labels (1 fraud, 0 legit) of earlier transactions; True where one was held."""
        n = len(terminal_ids)
        _, found = self.terminals.step(
            np.full(n, LABEL, np.int8),
            self.terminals.slots_for(terminal_ids),
            np.zeros(n, np.int64),
            np.asarray(tx_keys, dtype=np.int64),
            np.asarray(labels, dtype=np.int8),
        )
        return found
