"""Feature names in model-input order (the ONNX model sees them as f0, f1, ...)."""

from __future__ import annotations

WINDOW_DAYS: tuple[int, ...] = (1, 7, 30)

# The handbook's 15 baseline inputs, under the book's column names and in the book's order.
HANDBOOK_FEATURES: tuple[str, ...] = (
    "TX_AMOUNT",
    "TX_DURING_WEEKEND",
    "TX_DURING_NIGHT",
    *(
        name
        for n in WINDOW_DAYS
        for name in (f"CUSTOMER_ID_NB_TX_{n}DAY_WINDOW", f"CUSTOMER_ID_AVG_AMOUNT_{n}DAY_WINDOW")
    ),
    *(
        name
        for n in WINDOW_DAYS
        for name in (f"TERMINAL_ID_NB_TX_{n}DAY_WINDOW", f"TERMINAL_ID_RISK_{n}DAY_WINDOW")
    ),
)

# Time-aware per-user features the handbook lacks; they catch bursts (card testing) and
# amounts far from a card's habit.
USER_EXTRA_FEATURES: tuple[str, ...] = (
    "AMOUNT_DEVIATION",  # amount / the user's mean amount before this transaction (1.0 if none)
    "SECONDS_SINCE_LAST_TX",  # -1 when the user has no earlier transaction
    "USER_NB_TX_1HOUR_WINDOW",
    "USER_AMOUNT_SUM_1HOUR_WINDOW",
    "USER_NEW_TERMINAL",  # 1 if the user did not use this terminal in the kept history
)

FEATURE_NAMES: tuple[str, ...] = HANDBOOK_FEATURES + USER_EXTRA_FEATURES

STATELESS_COLUMNS = slice(0, 3)
USER_COLUMNS = [FEATURE_NAMES.index(n) for n in FEATURE_NAMES[3:9]] + [
    FEATURE_NAMES.index(n) for n in USER_EXTRA_FEATURES
]
TERMINAL_COLUMNS = [FEATURE_NAMES.index(n) for n in FEATURE_NAMES[9:15]]
N_USER_FEATURES = len(USER_COLUMNS)
N_TERMINAL_FEATURES = len(TERMINAL_COLUMNS)
