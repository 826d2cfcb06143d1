"""Every model feature, defined once: name, rule alias, entity, window, statistic, column.

The model-input order (`FEATURE_NAMES`, what the ONNX model sees as f0, f1, ...), the
column each entity's kernel fills, the per-entity widths, the rule language's short names
(`policy.expressions`) and the feature table in docs/architecture.md (`markdown_table`,
checked by a test) all derive from `FEATURES`.

The windows are fixed: the compiled kernels (`features.kernels`) test them as nested
constants, so they are part of the model's definition, not a setting.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

MS_PER_HOUR = 3_600_000
MS_PER_DAY = 24 * MS_PER_HOUR
WINDOW_DAYS: tuple[int, ...] = (1, 7, 30)  # card and terminal windows, shortest first
VELOCITY_HOURS = 1  # the card's short burst window

Entity = Literal["transaction", "card", "terminal", "device", "ip", "email", "card_country"]
# Entities beyond card and terminal, keyed by a field of the gateway's message (the card and
# its merchant country for "card_country"): each a ring of (time, card, transaction) in
# one link store, through one kernel (`features.kernels.link_step`), whose output columns
# are `LINK_STATS`. A transaction without the field has none of that entity's features.
LINKS: tuple[Entity, ...] = ("device", "ip", "email", "card_country")
LINK_STATS: tuple[str, ...] = ("count_1h", "count_1d", "cards_1h", "cards_1d", "card_earlier")
Statistic = Literal[
    "amount",
    "weekend",
    "night",
    "count",
    "mean_amount",
    "sum_amount",
    "fraud_share",
    "amount_deviation",
    "seconds_since_last",
    "new_terminal",
    "max_amount_deviation",
    "last_label",
    "card_not_present",
    "country_mismatch",
    "link_count",
    "distinct_cards",
    "card_earlier",
]


@dataclass(frozen=True)
class FeatureSpec:
    """One model input. `slot` is its column in its entity's kernel output."""

    name: str
    alias: str
    entity: Entity
    statistic: Statistic
    definition: str
    window: str | None = None  # "1d", "7d", "30d", "1h"; None when not windowed
    slot: int = 0


def _pairs(
    *rows: tuple[str, str, Statistic, str],
) -> tuple[tuple[str, str, Statistic, str], ...]:
    """(name, alias, statistic, definition) rows, typed so each statistic is checked."""
    return rows


def _days(n: int) -> str:
    return f"{n}d"


# How a link entity is named and phrased in its features' names, rule names and definitions.
_LINK_WORDS: dict[str, tuple[str, str, str]] = {  # entity: (NAME, alias word, where)
    "device": ("DEVICE", "device", "on the device"),
    "ip": ("IP", "ip", "from the IP address"),
    "email": ("EMAIL", "email", "with the email"),
    "card_country": ("COUNTRY", "country", "in the merchant's country"),
}
_WINDOW_WORDS = {"1h": ("1HOUR", "1 h"), "1d": ("1DAY", "1 d")}
# Each link entity's features, by their column of the link kernel's output.
_LINK_FEATURES: tuple[tuple[Entity, tuple[str, ...]], ...] = (
    ("device", ("cards_1h", "cards_1d", "card_earlier")),
    ("ip", ("cards_1h", "cards_1d")),
    ("email", ("count_1d", "cards_1d")),
    ("card_country", ("card_earlier",)),
)


def _link(entity: Entity, stat: str) -> FeatureSpec:
    """A link feature, its name, rule name, definition and window derived from its entity
    and its column of the link kernel's output (`LINK_STATS`)."""
    upper, word, where = _LINK_WORDS[entity]
    slot = LINK_STATS.index(stat)
    if stat == "card_earlier":
        return FeatureSpec(
            f"USER_{upper}_NB_TX_30DAY_WINDOW", f"card_{word}_tx_30d", entity, "card_earlier",
            f"the card's earlier transactions {where} in (t - 30 d, t) (0: its first time "
            "there)", "30d", slot,
        )  # fmt: skip
    what, window = stat.split("_")
    big, text = _WINDOW_WORDS[window]
    if what == "cards":
        return FeatureSpec(
            f"{upper}_NB_CARDS_{big}_WINDOW", f"{word}_cards_{window}", entity, "distinct_cards",
            f"distinct cards {where} in (t - {text}, t], current included", window, slot,
        )  # fmt: skip
    return FeatureSpec(
        f"{upper}_NB_TX_{big}_WINDOW", f"{word}_tx_{window}", entity, "link_count",
        f"transactions {where} in (t - {text}, t], current included", window, slot,
    )  # fmt: skip


def _build() -> tuple[FeatureSpec, ...]:
    tx: list[FeatureSpec] = [
        FeatureSpec("TX_AMOUNT", "amount", "transaction", "amount", "amount", slot=0),
        FeatureSpec(
            "TX_DURING_WEEKEND", "weekend", "transaction", "weekend",
            "Saturday or Sunday (UTC)", slot=1,
        ),
        FeatureSpec(
            "TX_DURING_NIGHT", "night", "transaction", "night", "hour <= 6 (UTC)", slot=2
        ),
    ]  # fmt: skip
    card_windows = [
        FeatureSpec(name, alias, "card", stat, text, _days(n))
        for n in WINDOW_DAYS
        for name, alias, stat, text in _pairs(
            (
                f"CUSTOMER_ID_NB_TX_{n}DAY_WINDOW", f"tx_count_{n}d", "count",
                f"count of the card's transactions in (t - {n} d, t], current included",
            ),
            (
                f"CUSTOMER_ID_AVG_AMOUNT_{n}DAY_WINDOW", f"avg_amount_{n}d", "mean_amount",
                f"mean amount of the card's transactions in (t - {n} d, t], current included",
            ),
        )
    ]  # fmt: skip
    terminal = [
        FeatureSpec(name, alias, "terminal", stat, text, _days(n))
        for n in WINDOW_DAYS
        for name, alias, stat, text in _pairs(
            (
                f"TERMINAL_ID_NB_TX_{n}DAY_WINDOW", f"terminal_tx_count_{n}d", "count",
                f"count of the terminal's transactions in (t - ({n} d + delay), t - delay]",
            ),
            (
                f"TERMINAL_ID_RISK_{n}DAY_WINDOW", f"terminal_risk_{n}d", "fraud_share",
                f"share of the terminal's transactions in (t - ({n} d + delay), t - delay] "
                "labelled fraud (0 if none)",
            ),
        )
    ]  # fmt: skip
    # Time-aware card features the handbook lacks: they catch bursts (card testing) and
    # amounts far from a card's habit.
    card_extra = [
        FeatureSpec(
            "AMOUNT_DEVIATION", "amount_deviation", "card", "amount_deviation",
            "amount / the card's lifetime mean amount before this transaction (1.0 if none)",
        ),
        FeatureSpec(
            "SECONDS_SINCE_LAST_TX", "seconds_since_last_tx", "card", "seconds_since_last",
            "seconds since the card's previous transaction (-1 if none)",
        ),
        FeatureSpec(
            "USER_NB_TX_1HOUR_WINDOW", "tx_count_1h", "card", "count",
            "count of the card's transactions in (t - 1 h, t]", f"{VELOCITY_HOURS}h",
        ),
        FeatureSpec(
            "USER_AMOUNT_SUM_1HOUR_WINDOW", "amount_sum_1h", "card", "sum_amount",
            "amount spent by the card in (t - 1 h, t]", f"{VELOCITY_HOURS}h",
        ),
        FeatureSpec(
            "USER_NEW_TERMINAL", "new_terminal", "card", "new_terminal",
            "1 if the card did not use this terminal in its kept history",
        ),
        # A stolen card's thief spends well above its habit on several transactions: the
        # largest recent deviation marks the card, not only the one transaction.
        *(
            FeatureSpec(
                f"USER_MAX_AMOUNT_DEVIATION_{n}DAY_WINDOW", f"max_deviation_{n}d", "card",
                "max_amount_deviation",
                f"largest amount of the card's earlier transactions in (t - {n} d, t] / the "
                "card's lifetime mean amount before this transaction (0 if none)",
                _days(n),
            )
            for n in WINDOW_DAYS[1:]
        ),
    ]  # fmt: skip
    # A compromised terminal's every transaction is fraud: its newest known label says so
    # even on days it saw no other transaction.
    terminal_extra = [
        FeatureSpec(
            "TERMINAL_ID_LAST_LABEL", "terminal_last_label", "terminal", "last_label",
            "label of the terminal's newest transaction in (t - (30 d + delay), t - delay] "
            "(1 fraud; 0 if legitimate or none)",
            _days(30),
        ),
    ]  # fmt: skip
    # A feature's slot is its column in its entity's kernel output: each kernel writes its
    # windows, then its extras; the model sees the handbook's 15 first.
    card = [replace(s, slot=i) for i, s in enumerate(card_windows + card_extra)]
    term = [replace(s, slot=i) for i, s in enumerate(terminal + terminal_extra)]
    # The gateway's message: features a handbook transaction (no such fields) has missing.
    gateway = [
        FeatureSpec(
            "TX_CARD_NOT_PRESENT", "card_not_present", "transaction", "card_not_present",
            "1 if the channel is e-commerce or mail/telephone, 0 if card present "
            "(missing without a channel)", slot=3,
        ),
        FeatureSpec(
            "TX_BIN_COUNTRY_MISMATCH", "bin_country_mismatch", "transaction", "country_mismatch",
            "1 if the card's BIN country is not the merchant's country (missing without "
            "both)", slot=4,
        ),
    ]  # fmt: skip
    links = [_link(entity, stat) for entity, stats in _LINK_FEATURES for stat in stats]
    return (
        *tx,
        *card[: len(card_windows)],
        *term[: len(terminal)],
        *card[len(card_windows) :],
        *term[len(terminal) :],
        *gateway,
        *links,
    )


FEATURES: tuple[FeatureSpec, ...] = _build()
FEATURE_NAMES: tuple[str, ...] = tuple(s.name for s in FEATURES)
ALIASES: dict[str, str] = {s.alias: s.name for s in FEATURES}


def _columns(entity: Entity) -> list[int]:
    """Model-input columns of an entity's features, in the order its kernel writes them."""
    columns = [i for i, s in enumerate(FEATURES) if s.entity == entity]
    return sorted(columns, key=lambda i: FEATURES[i].slot)


def link_columns(entity: Entity) -> tuple[list[int], list[int]]:
    """A link entity's model-input columns and, for each, its column in the link kernel's
    output (`LINK_STATS`)."""
    specs = [(i, s) for i, s in enumerate(FEATURES) if s.entity == entity]
    return [i for i, _ in specs], [s.slot for _, s in specs]


def slot(alias: str) -> int:
    """The column of a feature (by its rule name) in its entity's kernel output: the
    kernels write each feature through this, never by a literal index."""
    found = [s.slot for s in FEATURES if s.alias == alias]
    if len(found) != 1:
        raise KeyError(f"no feature named {alias!r}")
    return found[0]


TRANSACTION_COLUMNS: list[int] = _columns("transaction")
CARD_COLUMNS: list[int] = _columns("card")
TERMINAL_COLUMNS: list[int] = _columns("terminal")
CARD_WIDTH = len(CARD_COLUMNS)  # columns a card shard answers with
TERMINAL_WIDTH = len(TERMINAL_COLUMNS)  # columns a terminal shard answers with
LINK_WIDTH = len(LINK_STATS)  # columns a link step answers with
# Per link entity (in `LINKS` order): whether its features count the card's earlier events
# there (the kernel skips that walk for the others: a shared IP's 30 days are long).
EARLIER: tuple[bool, ...] = tuple(
    LINK_STATS.index("card_earlier") in link_columns(e)[1] for e in LINKS
)
N_FEATURES = len(FEATURES)

# The handbook's 15 baseline inputs, under the book's column names and in the book's order.
HANDBOOK_FEATURES: tuple[str, ...] = FEATURE_NAMES[:15]


def markdown_table() -> str:
    """The feature table of docs/architecture.md (a test keeps the two equal)."""
    rows = ["| # | name | rule name | entity | window | definition |", "|---|---|---|---|---|---|"]
    for i, s in enumerate(FEATURES):
        rows.append(
            f"| {i} | {s.name} | `{s.alias}` | {s.entity} | {s.window or '-'} | {s.definition} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
