"""The scoring pipeline without Ray: in-process shards, a fake or real model."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from actors.local_shards import LocalShardClient
from deployments.model_holder import ModelHolder, Scored, onnx_loader
from deployments.pipeline import ScoringPipeline, group_by_route
from deployments.schemas import LabelIn, TransactionIn
from features.ids import (
    id_buckets,
    id_keys,
    id_keys_many,
    shard_of,
    stable_hash64,
    stable_hashes64,
    terminal_id_keys,
    transaction_keys,
)
from features.spec import FEATURE_NAMES
from policy.decision import Thresholds

REPO = Path(__file__).resolve().parents[2]
COL = {n: i for i, n in enumerate(FEATURE_NAMES)}


class FakeModel:
    """Scores = amount / 1000, capped at 1: decisions are predictable. Its "contributions"
    are the amount (/1000) and the 1-hour count (/10), so the reasons are known too."""

    version = "fake-1"

    async def score(self, x: np.ndarray) -> Scored:
        return Scored(np.minimum(x[:, COL["TX_AMOUNT"]] / 1000, 1.0), self.version)

    async def explain(self, x: np.ndarray, approx: bool = False) -> tuple[np.ndarray, str]:
        contribs = np.zeros_like(x)
        contribs[:, COL["TX_AMOUNT"]] = x[:, COL["TX_AMOUNT"]] / 1000
        contribs[:, COL["USER_NB_TX_1HOUR_WINDOW"]] = x[:, COL["USER_NB_TX_1HOUR_WINDOW"]] / 10
        return contribs, self.version


def tx(
    i: int,
    user: str = "u1",
    terminal: str = "t1",
    amount: float = 10.0,
    ts: str = "2018-06-01T10:00:00",
) -> TransactionIn:
    return TransactionIn(
        transaction_id=f"tx{i}", user_id=user, terminal_id=terminal, amount=amount, timestamp=ts
    )


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_remembered_terminal_keys_equal_fresh_ones_past_the_cache_bound() -> None:
    ids = [f"term-{i}" for i in range(40_000)]  # more than the cache holds
    hits = terminal_id_keys.cache_info().hits
    for v in ids + ids[-100:] + ids[:100]:  # recent ones are remembered, the first evicted
        assert terminal_id_keys(v) == id_keys(v)
    assert terminal_id_keys.cache_info().hits - hits == 100


def test_ids_hashed_together_equal_ids_hashed_one_by_one() -> None:
    """`id_keys_many` computes base64 and 64-bit keys on arrays; it must give `id_keys`'s
    values exactly (state, snapshots and routing are keyed by them)."""
    rng = np.random.default_rng(5)
    printable = [chr(c) for c in range(33, 127)] + ["é", "カ", "🙂"]
    ids = [str(i) for i in range(-5, 1_000)] + [
        "".join(rng.choice(printable, size=int(rng.integers(1, 65)))) for _ in range(3_000)
    ]
    digests, keys = id_keys_many(ids)
    expected = [id_keys(v) for v in ids]
    assert digests == [e[0] for e in expected]
    assert keys.dtype == np.int64 and keys.tolist() == [e[1] for e in expected]
    assert id_keys_many([])[0] == [] and len(id_keys_many([])[1]) == 0
    hashes = stable_hashes64(ids)  # body hashes are hashed the same way, a batch at a time
    assert hashes.dtype == np.int64 and hashes.tolist() == [stable_hash64(v) for v in ids]
    # Offline, string transaction ids are keyed the same way; integer ids are their own key.
    assert transaction_keys(np.array(ids, dtype=object)).tolist() == hashes.tolist()
    assert transaction_keys(np.arange(3)).tolist() == [0, 1, 2]


def test_shard_hash_is_stable_and_spreads() -> None:
    assert shard_of("card-42", 8) == shard_of("card-42", 8)
    counts = np.bincount([shard_of(f"card-{i}", 8) for i in range(8000)], minlength=8)
    assert counts.min() > 800  # uniform within noise
    keys = id_keys_many(["a", "b", "a", "c", "a"])[1]
    groups = group_by_route(keys, 3)
    assert sorted(np.concatenate(list(groups.values())).tolist()) == [0, 1, 2, 3, 4]
    assert all(np.all(np.diff(idx) > 0) for idx in groups.values())  # input order kept
    # One rule for every split: shards, stream partitions, replay lanes, job partitions.
    cards = [f"card-{i}" for i in range(500)]
    assert id_buckets(cards, 8).tolist() == [shard_of(c, 8) for c in cards]
    salted = id_buckets(cards, 8, salt="worker:")
    assert salted.tolist() != id_buckets(cards, 8).tolist()  # an independent split
    assert salted.tolist() == id_buckets(cards, 8, salt="worker:").tolist()


def test_decision_tiers_and_order() -> None:
    p = ScoringPipeline(LocalShardClient(3, 2), FakeModel(), Thresholds(review=0.5, block=0.9))
    amounts = [100.0, 600.0, 950.0, 500.0, 900.0]
    out = run(p.score([tx(i, user=f"u{i}", amount=a) for i, a in enumerate(amounts)]))
    assert [o.transaction_id for o in out] == [f"tx{i}" for i in range(5)]
    assert [o.decision for o in out] == ["LEGIT", "REVIEW", "BLOCK", "LEGIT", "REVIEW"]
    assert {o.model_version for o in out} == {"fake-1"}


def test_state_routes_to_one_shard_per_card() -> None:
    shards = LocalShardClient(4, 2)
    p = ScoringPipeline(shards, FakeModel(), Thresholds())
    for i in range(20):
        run(p.score([tx(i, user="card-7", ts=f"2018-06-01T10:{i:02d}:00")]))
    per_shard = [s.transactions for s in shards.users]
    assert sorted(per_shard) == [0, 0, 0, 20]
    assert per_shard.index(20) == shard_of("card-7", 4)
    last = run(p.score([tx(99, user="card-7", ts="2018-06-01T10:30:00")], include_features=True))
    assert last[0].features["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 21


def test_feedback_reaches_terminal_risk_after_the_delay() -> None:
    p = ScoringPipeline(LocalShardClient(2, 2), FakeModel(), Thresholds())
    run(p.score([tx(1, user="a", terminal="T", ts="2018-06-01T10:00:00")]))
    missing = run(
        p.feedback(
            [
                LabelIn(transaction_id="tx1", terminal_id="T", is_fraud=True),
                LabelIn(transaction_id="nope", terminal_id="T", is_fraud=True),
            ]
        )
    )
    assert missing == ["nope"]
    later = run(p.score([tx(2, user="b", terminal="T", ts="2018-06-08T12:00:00")], True))[0]
    assert later.features["TERMINAL_ID_RISK_7DAY_WINDOW"] == 1.0


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


def test_model_holder_swaps_between_batches_without_splitting_one() -> None:
    holder = ModelHolder(onnx_loader())
    v1 = holder.load(REPO / "models" / "default")
    x = np.zeros((3, len(FEATURE_NAMES)))
    out = holder.score_many([x[:1], x[1:]])
    assert [len(o.scores) for o in out] == [1, 2] and {o.version for o in out} == {v1}
    with pytest.raises(Exception, match="not a model directory"):
        holder.load(REPO / "models" / "missing")
    assert holder.score_many([x])[0].version == v1  # a failed load leaves the old model serving
    # A shadow scores the same rows beside the live model; the live answer is unchanged.
    holder.load(REPO / "models" / "default", shadow_dir=REPO / "models" / "default")
    both = holder.score_many([x])[0]
    assert both.shadow_version == v1 and np.array_equal(both.shadow_scores, both.scores)
    contribs, version = holder.explain(x[:2])
    assert contribs.shape == (2, len(FEATURE_NAMES)) and version == v1


def test_exact_and_approximate_reasons_both_add_up_to_the_score() -> None:
    """Exact TreeSHAP and Saabas attribution both decompose the same log-odds (with the
    bias); they are different decompositions, which is why `reasons: exact` is the default."""
    from models.explain import Explainer
    from models.onnx import load_model

    x = np.random.default_rng(3).gamma(2.0, 20.0, size=(50, len(FEATURE_NAMES)))
    explainer = Explainer(REPO / "models" / "default")
    exact, approx = explainer.contributions(x), explainer.contributions(x, approx=True)
    assert exact.shape == approx.shape == (50, len(FEATURE_NAMES))
    assert np.allclose(exact.sum(1) - approx.sum(1), 0.0, atol=1e-4)  # same bias, same margin
    assert not np.allclose(exact, approx)
    margin = np.log(load_model(REPO / "models" / "default").score(x))
    margin -= np.log1p(-np.exp(margin))
    bias = margin - exact.sum(1)
    assert np.allclose(bias, bias[0], atol=5e-3)  # contributions + one constant = log-odds


def test_micro_batcher_groups_requests_and_keeps_each_answer() -> None:
    from deployments.microbatch import MicroBatcher

    calls: list[int] = []

    async def run(items):  # type: ignore[no-untyped-def]
        calls.append(len(items))
        if "boom" in items:
            raise RuntimeError("down")
        return [f"answer-{x}" for x in items]

    async def scenario() -> tuple[list[list[str]], BaseException | None]:
        b = MicroBatcher(run, max_wait_s=0.01, max_transactions=100)
        got = await asyncio.gather(*(b.submit([f"r{i}a", f"r{i}b"]) for i in range(10)))
        err = None
        try:
            await asyncio.gather(b.submit(["ok"]), b.submit(["boom"]))
        except RuntimeError as e:
            err = e
        return got, err

    got, err = run_(scenario())
    assert got == [[f"answer-r{i}a", f"answer-r{i}b"] for i in range(10)]
    # The first request finds the pipeline idle and goes at once; the nine that arrive while
    # it is in flight go together in one call.
    assert calls[:2] == [2, 18]
    assert isinstance(err, RuntimeError)


def test_micro_batcher_holds_newcomers_while_a_group_is_out() -> None:
    """Group commit: with one group in flight, requests that arrive meanwhile go together
    when it returns (not on the wait timer); past `max_wait_s` they go anyway."""
    from deployments.microbatch import MicroBatcher

    calls: list[list[str]] = []

    async def slow(items):  # type: ignore[no-untyped-def]
        calls.append(list(items))
        await asyncio.sleep(0.05)
        return list(items)

    async def arrivals(b: MicroBatcher[str, str], n: int) -> list[list[str]]:
        tasks = [asyncio.create_task(b.submit(["first"]))]
        for i in range(n):
            await asyncio.sleep(0.005)
            tasks.append(asyncio.create_task(b.submit([f"r{i}"])))
        return await asyncio.gather(*tasks)

    got = run_(arrivals(MicroBatcher(slow, max_wait_s=0.2, max_in_flight=1), 5))
    assert got == [["first"]] + [[f"r{i}"] for i in range(5)]
    assert calls == [["first"], [f"r{i}" for i in range(5)]]

    calls.clear()  # a short wait bound lets a second group out while the first is away
    run_(arrivals(MicroBatcher(slow, max_wait_s=0.012, max_in_flight=1), 5))
    assert len(calls) >= 3 and calls[0] == ["first"]
    assert [x for c in calls for x in c] == ["first"] + [f"r{i}" for i in range(5)]


def run_(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)
