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
    for amount in (float("nan"), float("inf"), -0.01):
        with pytest.raises(ValidationError) as e:
            TransactionIn.model_validate({**BASE, **ts, "amount": amount})
        assert [err["loc"] for err in e.value.errors()] == [("amount",)]


@pytest.mark.parametrize(
    ("field", "value"),
    [
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


@pytest.mark.parametrize(
    "bad",
    ["a\x85b", "\x9f", "a\x80", "a/b", "a\\b", "a%2Fb", "50%", ".", "..", "...", "a b", "\x7f"],
)
def test_ids_are_visible_characters_that_read_back_as_one_path_segment(bad: str) -> None:
    """C1 controls are control characters too; `/ \\ %` and dots-only ids would be decoded
    or resolved away in `GET /v1/transactions/{id}`, so could never be fetched."""
    ts = {"timestamp": "2018-06-01T10:00:00"}
    with pytest.raises(ValidationError) as e:
        TransactionIn.model_validate({**BASE, **ts, "transaction_id": bad})
    assert [err["loc"] for err in e.value.errors()] == [("transaction_id",)]


def test_ids_may_hold_dots_and_letters_of_any_script() -> None:
    ts = {"timestamp": "2018-06-01T10:00:00"}
    for good in ("a.b", ".x", "tx-1:2_3", "карта-7", "x" * 64):
        assert TransactionIn.model_validate({**BASE, **ts, "user_id": good}).user_id == good


@pytest.mark.parametrize("value", [1e12, 2e10, "1000000000000", 946_684_799, float("nan")])
def test_a_number_is_unix_seconds_and_out_of_range_is_refused(value: object) -> None:
    """pydantic alone reads numbers above 2e10 as milliseconds: 1e12 s (year 33658) would
    be taken as 2001-09-09 and applied to the card's history."""
    with pytest.raises(ValidationError, match="Unix seconds") as e:
        TransactionIn.model_validate({**BASE, "timestamp": value})
    assert [err["loc"] for err in e.value.errors()] == [("timestamp",)]


def test_numbers_and_number_strings_in_range_are_unix_seconds() -> None:
    want = dt.datetime(2018, 6, 1, 10, tzinfo=dt.timezone.utc)
    for value in (1_527_847_200, 1_527_847_200.0, "1527847200"):
        assert TransactionIn.model_validate({**BASE, "timestamp": value}).timestamp == want


def test_an_unknown_field_is_named_by_where_it_was_never_by_its_name() -> None:
    """Labels refuse unknown fields (transactions drop them: test_gateway_message.py)."""
    from deployments.http.schemas import FeedbackIn, error_field

    pan = "4111111111111111"
    label = {"transaction_id": "t", "terminal_id": "k", "is_fraud": True}
    body = {"labels": [{**label, pan: 1, "x" * 6500: 2}]}
    with pytest.raises(ValidationError) as e:
        FeedbackIn.model_validate(body)
    fields = {error_field(err) for err in e.value.errors()}
    assert fields == {"labels.0.<unknown field>"}
