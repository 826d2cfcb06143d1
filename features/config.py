"""Engine settings: label delay, per-key state capacity and the currency table (the windows
are part of the feature definitions, `features.spec`, not settings)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from features.currency import CurrencyConfig
from features.spec import MS_PER_DAY


class EngineConfig(BaseModel):
    """How much history the engine keeps and how labels become visible.

    The default label delay is the handbook's, 7 days. Capacity is the most events kept per
    card / per terminal; each ring holds only what its windows need, so a large capacity
    costs a quiet card or terminal nothing. The defaults keep 30 days of a card paying 34
    times a day, and 37 days (the windows plus the delay) of a merchant's terminal taking
    10,000 transactions a day; the handbook's busiest card has 157 transactions in 30 days
    and its busiest terminal 97 in 37 days.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    label_delay_days: int = Field(7, ge=0, le=90)
    user_capacity: int = Field(1024, ge=8, le=65_536)
    terminal_capacity: int = Field(400_000, ge=8, le=4_000_000)
    link_capacity: int = Field(
        400_000,
        ge=8,
        le=4_000_000,
        description="Events kept per device, IP address, email or card-and-country (30 days "
        "of a shared IP address taking 10,000 transactions a day).",
    )
    lateness_days: float | None = Field(
        7.0,
        ge=0,
        le=365,
        description="How far behind the newest event a transaction may arrive and still see "
        "history no later transaction would have expired; quiet cards and terminals give "
        "their events back once their windows end this far behind it. None keeps them.",
    )
    currency: CurrencyConfig = Field(
        default_factory=CurrencyConfig,
        description="The reporting currency every amount feature is in, and the rates into it.",
    )

    @property
    def label_delay_ms(self) -> int:
        return self.label_delay_days * MS_PER_DAY

    @property
    def lateness_ms(self) -> int | None:
        return None if self.lateness_days is None else int(self.lateness_days * MS_PER_DAY)
