"""Request and response bodies of the HTTP API (pydantic v2), with their validation rules."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pycountry
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyAddress,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from features.gateway import normal_country, normal_email
from policy.rules import Rule

EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
FUTURE_SLACK = dt.timedelta(days=2)
_UTC = dt.timezone.utc
_EARLIEST_S, _FUTURE_SLACK_S = EARLIEST.timestamp(), FUTURE_SLACK.total_seconds()

# Ids: 1-64 visible characters: no whitespace, no control character (C0, DEL, C1), none of
# `/ \ %` (an id is a path segment of `GET /v1/transactions/{id}` and must read back the
# same: these are what a path decodes or splits on), and not dots only (`.`, `..` are
# resolved away by clients). Integers are accepted (the handbook's ids are numbers) and
# become their decimal strings.
_ID_CHAR = r"[^\s\x00-\x1f\x7f-\x9f/\\%]"
_ID_PATTERN = rf"^{_ID_CHAR}*[^\s\x00-\x1f\x7f-\x9f/\\%.]{_ID_CHAR}*$"


def _int_id_to_str(value: object) -> object:
    """Integers become their decimal string; other non-strings fail as the wrong type."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


# An id once integers are strings: what a field holds after `_int_id_to_str` ran on it.
IdText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=_ID_PATTERN),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1, "maxLength": 64, "pattern": _ID_PATTERN},
                {"type": "integer"},
            ]
        }
    ),
]
Id = Annotated[IdText, BeforeValidator(_int_id_to_str)]


def error_field(error: Mapping[str, Any]) -> str:
    """The field a validation error is about, as answers name it: never a name the client
    made up (an unknown field, perhaps a card number or 6 kB long, is named by where it was)."""
    loc = [p for p in error.get("loc", ()) if p != "body"]
    if error.get("type") == "extra_forbidden" and loc:
        loc[-1] = "<unknown field>"
    return ".".join(str(p) for p in loc) or "body"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _StrictTypes(_Strict):
    """No coercion either (`"3"` is not a number, `0` is not false)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


@dataclass
class UnknownFields:
    """Unknown transaction fields this process dropped on arrival (a running total: the
    report tick exports its growth). A process tally, not a per-message attribute: a private
    attribute costs ~2 us on every validation."""

    dropped: int = 0


UNKNOWN_FIELDS = UnknownFields()
_TX_IDS = ("transaction_id", "user_id", "terminal_id")
# Amounts are checked against their currency's limit (`features.currency`, configured); this
# bound only keeps absurd numbers out before that check.
MAX_ANY_AMOUNT = 1e15


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


# pycountry's list, read once: its lookup per value was ~6 % of a replica's CPU on batches.
_ALPHA_2 = frozenset(country.alpha_2 for country in pycountry.countries)


def _country(value: object) -> object:
    """ISO 3166-1 alpha-2, any case in, upper case out."""
    if isinstance(value, str):
        value = normal_country(value)
        if value in _ALPHA_2:
            return value
    raise ValueError("not an ISO 3166-1 alpha-2 country code")


def _mcc(value: object) -> object:
    """Merchant category codes are four digits; an integer is zero-padded (742 -> "0742")."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9999:
        return f"{value:04d}"
    return value


Country = Annotated[str, BeforeValidator(_country), WithJsonSchema({"type": "string"})]
Email = Annotated[
    str,
    BeforeValidator(lambda v: normal_email(v) if isinstance(v, str) else v),
    StringConstraints(max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"),
]
Channel = Literal["card_present", "ecommerce", "mail_telephone"]
EntryMode = Literal["chip", "contactless", "magstripe", "manual", "credential_on_file", "ecommerce"]


class TransactionIn(_Strict):
    """One card payment to score.

    Fields this API does not know (a gateway sends many) are accepted and dropped on
    arrival: never stored, never echoed; `UNKNOWN_FIELDS` counts them for the metrics."""

    model_config = ConfigDict(extra="allow", frozen=True)

    # Ids as `IdText`, with `_int_ids` below in place of `Id`'s per-field validator: the same
    # rule in one Python call per transaction instead of three, since this model is validated
    # once per transaction on every path.
    transaction_id: IdText
    user_id: IdText = Field(description="Card (or user) id; state is sharded by its hash.")
    terminal_id: IdText
    amount: float = Field(
        ge=0,
        lt=MAX_ANY_AMOUNT,
        strict=True,
        allow_inf_nan=False,
        description="A JSON number, >= 0 (0 for an account verification), with no more "
        "decimal places than its currency has (ISO 4217) and below the currency's limit "
        "(`engine.currency`).",
    )
    timestamp: dt.datetime = Field(description="ISO 8601 (naive = UTC) or Unix seconds.")
    currency: (
        Annotated[str, BeforeValidator(_upper), StringConstraints(pattern=r"^[A-Z]{3}$")] | None
    ) = Field(
        None,
        description="ISO 4217 code, any case; absent = the reporting currency. Amounts are "
        "converted to the reporting currency for every amount feature.",
    )
    mcc: Annotated[str, BeforeValidator(_mcc), StringConstraints(pattern=r"^[0-9]{4}$")] | None = (
        Field(None, description="Merchant category code (ISO 18245), four digits.")
    )
    merchant_country: Country | None = Field(None, description="ISO 3166-1 alpha-2.")
    bin_country: Country | None = Field(
        None, description="Issuing country of the card (from its BIN), ISO 3166-1 alpha-2."
    )
    channel: Channel | None = None
    entry_mode: EntryMode | None = None
    device_id: Id | None = Field(None, description="The payer's device; hashed like card ids.")
    ip: IPvAnyAddress | None = Field(
        None,
        description="The payer's IPv4 or IPv6 address (its canonical text, as "
        "`features.gateway.normal_ip` writes it, keys its state).",
    )
    email: Email | None = Field(
        None, description="The payer's email, case-insensitive; hashed like card ids."
    )

    @model_validator(mode="before")
    @classmethod
    def _int_ids(cls, data: object) -> object:
        if type(data) is dict:  # the usual case, string ids, decided without building anything
            get = data.get
            tx, user, terminal = get("transaction_id"), get("user_id"), get("terminal_id")
            if type(tx) is str and type(user) is str and type(terminal) is str:
                return data
        if isinstance(data, dict):
            ids = {k: _int_id_to_str(data[k]) for k in _TX_IDS if k in data}
            if any(v is not data[k] for k, v in ids.items()):
                return {**data, **ids}
        return data

    @field_validator("timestamp", mode="before")
    @classmethod
    def _unix_seconds(cls, v: object) -> object:
        """A number is Unix seconds, always (pydantic alone reads one above 2e10 as
        milliseconds, so `1e12` seconds, year 33658, would pass as 2001). So is a string that
        is a number: an ISO 8601 time always has a '-' or a ':'."""
        if isinstance(v, str) and "-" not in v and ":" not in v:
            try:
                v = float(v)
            except ValueError:
                return v  # pydantic names it an invalid datetime
        if isinstance(v, int | float) and not isinstance(v, bool):
            if not _EARLIEST_S <= v <= time.time() + _FUTURE_SLACK_S:
                raise ValueError(
                    "timestamp as a number is Unix seconds, from 2000-01-01 to 2 days ahead"
                )
            return dt.datetime.fromtimestamp(v, _UTC)
        return v

    @field_validator("timestamp")
    @classmethod
    def _sane_time(cls, v: dt.datetime) -> dt.datetime:
        v = v.replace(tzinfo=_UTC) if v.tzinfo is None else v.astimezone(_UTC)
        seconds = v.timestamp()  # compared as POSIX seconds: no datetime built per row
        if seconds < _EARLIEST_S:
            raise ValueError(f"timestamp before {EARLIEST:%Y-%m-%d}")
        if seconds > time.time() + _FUTURE_SLACK_S:
            raise ValueError("timestamp more than 2 days in the future")
        return v

    @model_validator(mode="after")
    def _drop_unknown(self) -> TransactionIn:
        extra = self.__pydantic_extra__
        if extra:
            UNKNOWN_FIELDS.dropped += len(extra)
            object.__setattr__(self, "__pydantic_extra__", {})
        return self

    @property
    def time_ms(self) -> int:
        return int(self.timestamp.timestamp() * 1000)


class BatchIn(_Strict):
    transactions: list[TransactionIn] = Field(min_length=1)


class Reason(BaseModel):
    feature: str
    value: float
    contribution: float = Field(description="TreeSHAP, in log-odds: how far it pushed the score.")


class ScoreOut(BaseModel):
    transaction_id: str
    score: float
    decision: str
    model_version: str
    reasons: list[Reason] | None = Field(
        None, description="REVIEW and BLOCK only: the features that raised the score most."
    )
    rules: list[str] | None = Field(None, description="Rules and lists that fired, by id.")
    features: dict[str, float | None] | None = Field(
        None,
        description="Every model input by name; null where the transaction lacks the "
        "field it needs (missing, not zero).",
    )
    degraded: bool | None = Field(
        None,
        description="Present (true) when the answer was given without some state, which "
        "did not answer within the request's deadline; decided by the `fallback` setting.",
    )
    degraded_reason: str | None = Field(
        None,
        description="card_state_late, terminal_state_late or card_and_terminal_state_late.",
    )


class BatchOut(BaseModel):
    results: list[ScoreOut]


class LabelIn(_Strict):
    """A confirmed outcome (chargeback, analyst review) of an earlier transaction."""

    transaction_id: Id
    terminal_id: Id = Field(description="The terminal of the labelled transaction.")
    is_fraud: StrictBool


class FeedbackIn(_Strict):
    labels: list[LabelIn] = Field(min_length=1)


class FeedbackOut(BaseModel):
    applied: int
    not_found: list[str] = Field(
        description="Transactions no longer (or never) held by their terminal's state."
    )


class BackfillIn(_Strict):
    """History for state: labels (applied first) and transactions, in event-time order."""

    transactions: list[TransactionIn] = Field(default_factory=list)
    labels: list[LabelIn] = Field(default_factory=list, max_length=100_000)

    @model_validator(mode="after")
    def _something(self) -> BackfillIn:
        if not self.transactions and not self.labels:
            raise ValueError("transactions or labels: at least one item")
        return self


class BackfillOut(BaseModel):
    applied: int = Field(description="Transactions applied to card and terminal state.")
    duplicates: int = Field(description="Transactions applied before (a batch sent again).")
    conflicts: list[str] = Field(description="Ids already applied with another body.")
    labels_applied: int
    labels_not_found: list[str] = Field(description="Labelled transactions no longer held.")


class ResolveIn(_StrictTypes):
    """An analyst's verdict on a REVIEW; it becomes a label like a chargeback."""

    outcome: Literal["fraud", "legit"]
    analyst: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "analyst"
    note: str = Field("", max_length=1000)


class RulesIn(_StrictTypes):
    rules: list[Rule] = Field(max_length=200)
    comment: str = Field("", max_length=500)


class ListEditIn(_StrictTypes):
    """Ids are hashed on arrival: a list never stores them."""

    add: list[Id] = Field(default_factory=list, max_length=100_000)
    remove: list[Id] = Field(default_factory=list, max_length=100_000)
    comment: str = Field("", max_length=500)


class RollbackIn(_StrictTypes):
    version: int = Field(ge=1)
    comment: str = Field("", max_length=500)
