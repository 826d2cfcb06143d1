"""Validation rules of a transaction that no other test pins down."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from deployments.http.schemas import TransactionIn

BASE = {"transaction_id": "t", "user_id": "u", "terminal_id": "k", "amount": 1.0}


def test_timestamps_up_to_two_days_ahead_pass_and_later_ones_name_the_field() -> None:
    now = dt.datetime.now(dt.timezone.utc)
    ok = TransactionIn.model_validate(
        {**BASE, "timestamp": (now + dt.timedelta(days=1.9)).isoformat()}
    )
    assert ok.timestamp.tzinfo == dt.timezone.utc
    with pytest.raises(ValidationError, match="timestamp more than 2 days in the future") as e:
        TransactionIn.model_validate(
            {**BASE, "timestamp": (now + dt.timedelta(days=2.1)).isoformat()}
        )
    assert e.value.errors()[0]["loc"] == ("timestamp",)
    # An offset is honoured: 2.1 days ahead in UTC is 2.1 days ahead in any zone.
    tz = dt.timezone(dt.timedelta(hours=-8))
    with pytest.raises(ValidationError, match="future"):
        TransactionIn.model_validate(
            {**BASE, "timestamp": (now + dt.timedelta(days=2.1)).astimezone(tz).isoformat()}
        )


def test_naive_timestamps_are_utc_and_time_ms_is_exact() -> None:
    tx = TransactionIn.model_validate({**BASE, "timestamp": "2018-06-01T10:00:00.250"})
    assert tx.time_ms == 1_527_847_200_250


def test_integer_ids_become_strings_and_other_types_are_refused_by_field() -> None:
    ts = {"timestamp": "2018-06-01T10:00:00"}
    tx = TransactionIn.model_validate(
        {**BASE, **ts, "transaction_id": 7, "user_id": 4111, "terminal_id": -3}
    )
    assert (tx.transaction_id, tx.user_id, tx.terminal_id) == ("7", "4111", "-3")
    for bad in (True, 1.5, None, [1], ""):
        with pytest.raises(ValidationError) as e:
            TransactionIn.model_validate({**BASE, **ts, "user_id": bad})
        assert [err["loc"] for err in e.value.errors()] == [("user_id",)]
    for amount in (float("nan"), float("inf"), 0.0):
        with pytest.raises(ValidationError) as e:
            TransactionIn.model_validate({**BASE, **ts, "amount": amount})
        assert [err["loc"] for err in e.value.errors()] == [("amount",)]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", 0),
        ("amount", -5),
        ("amount", float("nan")),
        ("amount", float("inf")),
        ("amount", 1e308),
        ("amount", "ten"),
        ("user_id", ""),
        ("user_id", "x" * 65),
        ("user_id", "a b"),
        ("timestamp", "yesterday"),
        ("timestamp", "1970-01-01T00:00:00"),
        ("timestamp", "2999-01-01T00:00:00"),
        ("currency", "euro"),
    ],
)
def test_validation_rejects_bad_fields(field: str, value: object) -> None:
    body = {
        "transaction_id": "t",
        "user_id": "u",
        "terminal_id": "k",
        "amount": 1.0,
        "timestamp": "2018-06-01T10:00:00",
        field: value,
    }
    with pytest.raises(ValidationError) as err:
        TransactionIn(**body)
    assert err.value.errors()[0]["loc"][0] == field


def test_validation_normalises_ids_and_times() -> None:
    t = TransactionIn(
        transaction_id=5,
        user_id=123,
        terminal_id="k",
        amount=2.5,
        timestamp="2018-06-01T12:00:00+02:00",
    )
    assert (t.transaction_id, t.user_id) == ("5", "123")
    assert t.timestamp == dt.datetime(2018, 6, 1, 10, tzinfo=dt.timezone.utc)
    with pytest.raises(ValidationError, match="Extra inputs"):
        TransactionIn(
            transaction_id="t",
            user_id="u",
            terminal_id="k",
            amount=1.0,
            timestamp="2018-06-01T10:00:00",
            pan="4111111111111111",
        )
