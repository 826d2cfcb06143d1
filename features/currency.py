"""Amounts in many currencies, features in one: the rates table and the per-currency checks.

Every amount feature (the amount itself, window sums and means, deviations) is computed in
the reporting currency, so a card that pays in EUR and in JPY has one habit, not two. The
online pipeline and the offline driver convert through the same table (`EngineConfig.
currency`), so both see the same numbers. A transaction without a currency is in the
reporting currency (the handbook's data has none).

Minor units (decimal places) come from ISO 4217 through the `iso4217` package: a JPY amount
has none, a KWD amount three. The rates are configuration: the default table is indicative
(docs/operations.md, "Currencies", says how to refresh it); a currency it lacks is refused,
naming the field, never converted at a guess.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from iso4217 import Currency
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Indicative mid rates (reporting-currency units per unit), rounded; refresh before relying
# on amount features in production (docs/operations.md, "Currencies").
INDICATIVE_USD_RATES: dict[str, float] = {
    "USD": 1.0,
    "EUR": 1.08,
    "GBP": 1.27,
    "CHF": 1.13,
    "JPY": 0.0067,
    "KRW": 0.00073,
    "IDR": 0.000063,
    "INR": 0.012,
    "CNY": 0.138,
    "HKD": 0.128,
    "SGD": 0.74,
    "AUD": 0.66,
    "NZD": 0.60,
    "CAD": 0.73,
    "MXN": 0.055,
    "BRL": 0.18,
    "ZAR": 0.054,
    "SEK": 0.094,
    "NOK": 0.092,
    "DKK": 0.145,
    "PLN": 0.25,
    "CZK": 0.043,
    "HUF": 0.0027,
    "TRY": 0.029,
    "AED": 0.272,
    "KWD": 3.25,
    "BHD": 2.65,
}


def minor_units(code: str) -> int | None:
    """ISO 4217 decimal places of a currency (None for units like gold that have none);
    KeyError when `code` is not an ISO 4217 currency."""
    try:
        return Currency(code).exponent
    except ValueError as e:
        raise KeyError(code) from e


@dataclass(frozen=True)
class AmountProblem:
    """Why an amount cannot be taken: the field at fault and a message without its value."""

    field: str  # "currency" or "amount"
    message: str


@dataclass(frozen=True)
class _Rule:
    rate: float
    limit: float  # in the currency's own units: amounts must be below it
    scale: float | None  # 10 ** minor units; None: any precision


class CurrencyConfig(BaseModel):
    """The reporting currency, the rates into it, and the largest amount taken."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reporting: str = Field("USD", description="ISO 4217 code every amount feature is in.")
    rates: dict[str, float] = Field(
        default_factory=lambda: dict(INDICATIVE_USD_RATES),
        description="Units of the reporting currency per unit of each accepted currency.",
    )
    max_amount: float = Field(
        1_000_000.0,
        gt=0,
        description="Largest amount taken, in the reporting currency (each currency's limit "
        "is this over its rate unless `limits` names it).",
    )
    limits: dict[str, float] = Field(
        default_factory=dict, description="Per-currency limits in that currency's units."
    )

    @field_validator("reporting")
    @classmethod
    def _iso(cls, v: str) -> str:
        minor_units(v)  # KeyError -> below
        return v

    @field_validator("rates", "limits")
    @classmethod
    def _codes(cls, v: dict[str, float]) -> dict[str, float]:
        for code, x in v.items():
            try:
                minor_units(code)
            except KeyError:
                raise ValueError(f"{code[:8]!r} is not an ISO 4217 currency code") from None
            if not (math.isfinite(x) and x > 0):
                raise ValueError(f"{code}: must be a positive number")
        return v

    @model_validator(mode="after")
    def _reporting_rate(self) -> CurrencyConfig:
        if self.rates.get(self.reporting) != 1.0:
            raise ValueError(f"rates: the reporting currency {self.reporting} must have rate 1")
        unknown = sorted(set(self.limits) - set(self.rates))
        if unknown:
            raise ValueError(f"limits: no rate for {', '.join(unknown)}")
        return self

    @cached_property
    def _rules(self) -> dict[str, _Rule]:
        rules = {}
        for code, rate in self.rates.items():
            units = minor_units(code)
            limit = self.limits.get(code, self.max_amount / rate)
            rules[code] = _Rule(rate, limit, None if units is None else 10.0**units)
        return rules

    def problem(self, currency: str | None, amount: float) -> AmountProblem | None:
        """Why this amount cannot be taken, or None. `amount` is finite and >= 0 already. The
        message names no value of the request (the limit and decimal places are the table's)."""
        code = self.reporting if currency is None else currency
        rule = self._rules.get(code)
        if rule is None:
            try:
                minor_units(code)
            except KeyError:
                return AmountProblem("currency", "not an ISO 4217 currency code")
            return AmountProblem("currency", "no exchange rate configured for this currency")
        if amount >= rule.limit:
            return AmountProblem("amount", f"must be below {rule.limit:,.0f} in its currency")
        if currency is not None and rule.scale is not None:
            units = amount * rule.scale
            if abs(units - round(units)) > 1e-6 * max(1.0, units):
                places = round(math.log10(rule.scale))
                return AmountProblem("amount", f"its currency has {places} decimal places")
        return None

    def rate(self, currency: str | None) -> float:
        """Reporting units per unit of `currency` (checked by `problem` first)."""
        return 1.0 if currency is None else self._rules[currency].rate

    def to_reporting(self, amounts: np.ndarray, currencies: Iterable[str | None]) -> np.ndarray:
        """Amounts in the reporting currency (online: one batch's transactions)."""
        rules = self._rules
        rates = np.fromiter(
            (1.0 if c is None else rules[c].rate for c in currencies), np.float64, len(amounts)
        )
        return amounts * rates

    def column_to_reporting(self, amounts: np.ndarray, currencies: pd.Series) -> np.ndarray:
        """Amounts in the reporting currency (offline: a whole table's `currency` column;
        missing values are the reporting currency). Unknown codes are a ValueError."""
        known = currencies.isna() | currencies.isin(list(self.rates))
        if not known.all():
            codes = sorted({str(c)[:8] for c in currencies[~known].unique()})[:5]
            raise ValueError(f"column 'currency': no exchange rate for {', '.join(codes)}")
        rates = currencies.map(self.rates).fillna(1.0).to_numpy(dtype=np.float64)
        return amounts * rates
