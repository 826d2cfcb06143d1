"""What a card gateway sends: optional payment fields, fields this API does not know, $0
verifications, and amounts in any ISO 4217 currency converted to one reporting currency
(online = offline)."""

from __future__ import annotations

import asyncio
import ipaddress

import numpy as np
import orjson
import pandas as pd
import pytest
from pydantic import ValidationError

from actors.client.local import LocalShardClient
from actors.errors import InvalidFields
from deployments.http import errors
from deployments.http.schemas import UNKNOWN_FIELDS, TransactionIn
from deployments.scoring.pipeline import ScoringPipeline
from deployments.stream.contract import Entry, StreamConfig
from deployments.stream.worker import BatchDecider
from features.config import EngineConfig
from features.currency import CurrencyConfig
from features.offline import offline_features
from features.spec import FEATURE_NAMES, FEATURES, LINKS
from features.transactions import normalise
from policy.decision import Thresholds
from tests.code.test_pipeline import FakeModel

BASE = {
    "transaction_id": "t1",
    "user_id": "card-1",
    "terminal_id": "k1",
    "amount": 12.5,
    "timestamp": "2026-06-01T10:00:00",
}
GATEWAY = {
    **BASE,
    "currency": "eur",
    "mcc": 742,
    "merchant_country": "de",
    "bin_country": "US",
    "channel": "ecommerce",
    "entry_mode": "credential_on_file",
    "device_id": 90210,
    "ip": "2001:db8::7",
    "email": " Payer@Example.COM ",
}


def test_every_gateway_field_is_validated_and_normalised() -> None:
    tx = TransactionIn.model_validate(GATEWAY)
    assert (tx.currency, tx.mcc, tx.merchant_country, tx.bin_country) == ("EUR", "0742", "DE", "US")
    assert (tx.channel, tx.entry_mode) == ("ecommerce", "credential_on_file")
    assert tx.device_id == "90210" and tx.email == "payer@example.com"
    assert tx.ip == ipaddress.ip_address("2001:db8::7")
    bare = TransactionIn.model_validate(BASE)  # every one of them optional
    assert (bare.currency, bare.mcc, bare.device_id, bare.ip, bare.email) == (None,) * 5


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mcc", "54111"),
        ("mcc", "ab12"),
        ("mcc", 10_000),
        ("merchant_country", "XX"),
        ("merchant_country", "DEU"),
        ("bin_country", 49),
        ("channel", "atm"),
        ("entry_mode", "telepathy"),
        ("device_id", "a b"),
        ("ip", "10.0.0.256"),
        ("email", "no-at-sign"),
        ("email", "two@@example.com"),
        ("currency", "EURO"),
        ("currency", "€"),
        ("amount", -0.01),
    ],
)
def test_a_bad_value_names_its_field_and_never_echoes_it(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as e:
        TransactionIn.model_validate({**GATEWAY, field: value})
    assert [err["loc"] for err in e.value.errors()] == [(field,)]


def test_unknown_fields_are_taken_dropped_and_counted() -> None:
    before = UNKNOWN_FIELDS.dropped
    pan = "4111111111111111"
    tx = TransactionIn.model_validate({**BASE, "pos_data": {"x": pan}, pan: 1, "acquirer": "a"})
    assert UNKNOWN_FIELDS.dropped == before + 3
    assert pan not in repr(tx) and pan not in str(tx.model_dump())
    assert tx.model_extra == {}
    TransactionIn.model_validate(BASE)
    assert UNKNOWN_FIELDS.dropped == before + 3  # a message without any counts none


@pytest.mark.parametrize(
    ("currency", "amount", "problem"),
    [
        ("JPY", 100.0, None),
        ("JPY", 100.5, ("amount", "its currency has 0 decimal places")),
        ("KWD", 1.125, None),  # three decimal places
        ("USD", 19.99, None),
        ("USD", 0.1 + 0.2, None),  # 0.30000000000000004 is 30 cents
        ("USD", 10.125, ("amount", "its currency has 2 decimal places")),
        ("KRW", 1_000_000.0, None),  # about 730 USD
        ("IDR", 5_000_000.0, None),
        ("USD", 1_000_000.0, ("amount", "must be below 1,000,000 in its currency")),
        ("EUR", 0.0, None),  # an account verification
        ("XAF", 10.0, ("currency", "no exchange rate configured for this currency")),
        ("QQQ", 10.0, ("currency", "not an ISO 4217 currency code")),
        (None, 123.456, None),  # the reporting currency, any precision (the handbook's)
        (None, 1e6, ("amount", "must be below 1,000,000 in its currency")),
    ],
)
def test_amounts_are_checked_per_currency(
    currency: str | None, amount: float, problem: tuple[str, str] | None
) -> None:
    found = CurrencyConfig().problem(currency, amount)
    assert (None if found is None else (found.field, found.message)) == problem


def test_the_currency_table_refuses_what_it_cannot_convert() -> None:
    with pytest.raises(ValidationError, match="rate 1"):
        CurrencyConfig(reporting="EUR")  # the default table is in USD
    with pytest.raises(ValidationError, match="not an ISO 4217"):
        CurrencyConfig(rates={"USD": 1.0, "ZZZ": 2.0})
    with pytest.raises(ValidationError, match="positive"):
        CurrencyConfig(rates={"USD": 1.0, "EUR": 0.0})
    own = CurrencyConfig(reporting="EUR", rates={"EUR": 1.0, "CHF": 1.05}, limits={"CHF": 5000})
    assert own.problem("CHF", 5000.0) is not None and own.problem("EUR", 5000.0) is None
    assert own.problem("USD", 1.0) is not None  # not in this table


def test_the_service_refuses_a_currency_it_cannot_convert_naming_the_field() -> None:
    p = ScoringPipeline(LocalShardClient(1, 1), FakeModel(), Thresholds())
    txs = [
        TransactionIn.model_validate({**BASE, "transaction_id": f"t{i}", **change})
        for i, change in enumerate(({}, {"currency": "XAF"}, {"currency": "JPY", "amount": 0.5}))
    ]
    with pytest.raises(InvalidFields) as e:
        p.check_amounts(txs, "transactions.")
    body = orjson.loads(errors.render(e.value).body)
    assert e.value.status == 422
    assert body["detail"] == "invalid transactions.1.currency, transactions.2.amount"
    assert [err["field"] for err in body["errors"]] == [
        "transactions.1.currency",
        "transactions.2.amount",
    ]
    p.check_amounts(txs[:1])  # nothing to refuse


def test_zero_amount_verifications_are_scored() -> None:
    p = ScoringPipeline(LocalShardClient(1, 1), FakeModel(), Thresholds())
    probes = [
        TransactionIn.model_validate({**BASE, "transaction_id": f"z{i}", "amount": 0.0,
                                      "timestamp": f"2026-06-01T10:0{i}:00"})
        for i in range(3)
    ]  # fmt: skip
    out = asyncio.run(p.score(probes, True))
    assert [o.decision for o in out] == ["LEGIT"] * 3
    last = out[-1].features
    assert last is not None and last["USER_NB_TX_1HOUR_WINDOW"] == 3.0
    assert last["AMOUNT_DEVIATION"] == 1.0  # no mean to compare with: the "none" value
    missing = {n for n, v in last.items() if v is None}  # no gateway fields were sent
    gateway = {"TX_CARD_NOT_PRESENT", "TX_BIN_COUNTRY_MISMATCH"}
    assert missing == {s.name for s in FEATURES if s.entity in LINKS} | gateway
    assert all(np.isfinite(v) for v in last.values() if v is not None)


def _stream(n: int = 240, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    currencies = np.array(["EUR", "JPY", None, "GBP", "KRW"], dtype=object)
    cur = currencies[rng.integers(0, len(currencies), n)]
    raw = np.round(rng.gamma(2.0, 40.0, n), 2)
    amount = np.where(np.isin(cur, ["JPY", "KRW"]), np.round(raw * 150), raw)
    times = pd.Timestamp("2026-05-01") + pd.to_timedelta(
        np.sort(rng.uniform(0, 20 * 86400, n)), "s"
    )
    return pd.DataFrame(
        {
            "transaction_id": [f"m{i}" for i in range(n)],
            "timestamp": times.floor("ms"),
            "user_id": [f"card-{i}" for i in rng.integers(0, 6, n)],
            "terminal_id": [f"k{i}" for i in rng.integers(0, 4, n)],
            "amount": amount,
            "currency": [c.lower() if c == "EUR" else c for c in cur],  # any case in
            "is_fraud": np.zeros(n, np.int8),
        }
    )


def test_amount_features_are_in_the_reporting_currency_online_as_offline() -> None:
    """One card paying in EUR, JPY, KRW and the reporting currency has one habit: online
    (the pipeline, in event-time batches) = offline (a `currency` column) to 1e-9."""
    df = normalise(_stream())
    offline = offline_features(df, EngineConfig()).set_index("transaction_id")
    p = ScoringPipeline(LocalShardClient(2, 1), FakeModel(), Thresholds())
    rows = df.to_dict("records")
    txs = [
        TransactionIn.model_validate(
            {**{k: r[k] for k in BASE}, "timestamp": r["timestamp"].isoformat(),
             **({"currency": r["currency"]} if isinstance(r["currency"], str) else {})}
        )
        for r in rows
    ]  # fmt: skip

    async def go() -> list[dict[str, float]]:
        got = []
        for a in range(0, len(txs), 16):
            got += [o.features for o in await p.score(txs[a : a + 16], True)]
        return got

    online = pd.DataFrame(asyncio.run(go()), index=df["transaction_id"])
    np.testing.assert_allclose(
        online[list(FEATURE_NAMES)].to_numpy(dtype=float),  # None (missing) as NaN
        offline.loc[online.index, list(FEATURE_NAMES)].to_numpy(),
        rtol=1e-9,
        atol=1e-9,
    )
    rates = CurrencyConfig().rates
    want = [r["amount"] * rates.get(r["currency"], 1.0) for r in rows]
    np.testing.assert_allclose(online["TX_AMOUNT"].to_numpy(), want, rtol=1e-12)
    assert df["currency"].dropna().str.isupper().all()


def test_offline_refuses_a_currency_without_a_rate() -> None:
    df = normalise(_stream(20).assign(currency="XAF"))
    with pytest.raises(ValueError, match="no exchange rate for XAF"):
        offline_features(df, EngineConfig())


def test_a_stream_entry_with_an_unconvertible_currency_is_answered_invalid() -> None:
    p = ScoringPipeline(LocalShardClient(1, 1), FakeModel(), Thresholds())
    decider = BatchDecider(p.score_applied, p.feedback, StreamConfig())
    items = [
        {**BASE, "transaction_id": "s1"},
        {**BASE, "transaction_id": "s2", "currency": "XAF"},
        {**BASE, "transaction_id": "s3", "currency": "JPY", "amount": 1500.0, "extra": 1},
    ]
    answers, dead = asyncio.run(decider.decide([Entry("1-0", "txs", orjson.dumps(items))]))
    assert [a["decision"] for a in answers[0]] == ["LEGIT", "INVALID", "LEGIT"]
    assert (
        answers[0][1]["error"] == "invalid currency: no exchange rate configured for this currency"
    )
    assert not dead and decider.stats()["invalid"] == 1
