"""Simulator parameters; the defaults are the handbook's run."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class SimulationConfig(BaseModel):
    """Everything that shapes a simulated stream. Same config + same seed = same file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_customers: int = Field(5_000, ge=1)
    n_terminals: int = Field(10_000, ge=1)
    n_days: int = Field(183, ge=1)
    start_date: dt.date = dt.date(2018, 4, 1)
    radius: float = Field(5.0, gt=0)
    seed: int = 0
    # Scenario 2: terminals compromised per day, and for how many days.
    compromised_terminals_per_day: int = Field(2, ge=0)
    terminal_compromise_days: int = Field(28, ge=1)
    # Scenario 3: cards compromised per day, for how many days, share of their tx that are fraud.
    compromised_customers_per_day: int = Field(3, ge=0)
    customer_compromise_days: int = Field(14, ge=1)
    # Scenario 4 (ours): card testing, a burst of small payments at unfamiliar terminals.
    card_testing_per_day: int = Field(1, ge=0)
    card_testing_min_tx: int = Field(5, ge=1)
    card_testing_max_tx: int = Field(15, ge=1)
    card_testing_span_minutes: float = Field(30.0, gt=0)
    # Scenarios 5-7 (ours, simulator/gateway.py): seen only through the gateway's fields.
    device_farms_per_day: int = Field(0, ge=0)  # bot rings testing 10-40 cards each
    takeovers_per_day: int = Field(0, ge=0)  # accounts taken over (new device and country)
    cross_border_per_day: int = Field(0, ge=0)  # cards used abroad after a BIN mismatch
    # The unit of parallel generation: each block of cards has its own random stream, so a
    # stream depends on this (and the seed), never on how many workers generate it.
    cards_per_block: int = Field(250, ge=1)

    @classmethod
    def handbook(cls, **overrides: object) -> SimulationConfig:
        """The book's run exactly: 5,000 cards, 10,000 terminals, 183 days, scenarios 1-3."""
        return cls(**{"card_testing_per_day": 0, **overrides})
