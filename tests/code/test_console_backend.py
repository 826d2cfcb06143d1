"""What the console's case page and rule preview read: a card's normal through the feature
engine, a case's related decisions, the rule preview over the newest first answers, and the
console's files served by name only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from actors.actor.decision_log import DecisionLog
from deployments.http.console import ConsoleFiles
from features.normals import Past, card_normals
from features.spec import FEATURE_NAMES
from policy.case import assemble
from policy.preview import RecentDecisions, preview
from policy.rules import Policy

AMOUNT = FEATURE_NAMES.index("TX_AMOUNT")
DAY = 86_400_000


def test_a_cards_normal_is_the_median_of_its_own_features_over_its_history() -> None:
    rng = np.random.default_rng(3)
    times = np.cumsum(rng.integers(1, 40, 60)) * 3_600_000 + 1_600_000_000_000  # hours apart
    amounts = rng.gamma(2.0, 30.0, 60).round(2)
    pairs = enumerate(zip(times, amounts, strict=True))
    history = [Past(int(t), float(a), f"k{i % 4}") for i, (t, a) in pairs]
    normals = card_normals(history)
    amount = normals["TX_AMOUNT"]
    assert amount.median == pytest.approx(np.median(amounts))
    assert (amount.low, amount.high) == pytest.approx(tuple(np.percentile(amounts, [10, 90])))
    # The card's 1-day count at each transaction, counted directly: itself and the card's
    # transactions of the day before it.
    counts = [np.sum((times <= t) & (times > t - DAY)) for t in times]
    assert normals["CUSTOMER_ID_NB_TX_1DAY_WINDOW"].median == pytest.approx(np.median(counts))
    assert normals["TX_AMOUNT"].transactions == 60
    assert not any(n.startswith("TERMINAL") for n in normals)  # not the card's own history
    assert card_normals(history[:1]) == {}


def _held(card: str, terminal: str, t: int, key: int, tier: int = 0) -> tuple:  # type: ignore[type-arg]
    return (t, 10.0 + key, tier, 0.1, "m1", 1, card, terminal, None, None, t, 7, key)


def test_a_case_reads_its_cards_and_terminals_recent_decisions_newest_first() -> None:
    log = DecisionLog(max_decisions=100)
    for i in range(30):
        log.add(f"tx{i}", _held(f"c{i % 3}", f"k{i % 5}", 1_000 * i, i))
    log.label("tx27", True, "chargeback", 5)
    log.label("tx3", False, "review", 6)
    cards, terminals = log.related("tx24", card_limit=4, terminal_limit=3)
    assert [r["transaction_id"] for r in cards] == ["tx27", "tx21", "tx18", "tx15"]
    assert [r["transaction_id"] for r in terminals] == ["tx29", "tx19", "tx14"]
    assert cards[0]["label"]["is_fraud"] is True
    assert log.related("nope", 5, 5) == ([], [])
    assert log.labels_by_key([27, 3, 4]) == {27: True, 3: False}


def test_a_case_sets_each_reason_beside_the_cards_normal() -> None:
    start = 1_600_000_000_000
    normals = card_normals([Past(start + i * DAY, 20.0 + i % 3, "k") for i in range(20)])
    found = {
        "transaction": {"transaction_id": "x", "time_ms": 0, "reasons": [
            {"feature": "TX_AMOUNT", "value": 950.0, "contribution": 1.2},
            {"feature": "TX_AMOUNT", "value": 21.0, "contribution": 0.1},
            {"feature": "TERMINAL_ID_RISK_7DAY_WINDOW", "value": 0.5, "contribution": 0.4},
        ]},
        "review": None, "card_history": [], "terminal_history": [],
    }  # fmt: skip
    out = assemble(found, normals)
    high, usual, terminal = out["features"]
    assert high["unusual"] is True and high["normal"]["median"] == pytest.approx(21.0)
    assert usual["unusual"] is False
    assert terminal["normal"] is None and terminal["unusual"] is None and not terminal["own"]
    assert high["own"] and assemble(found, {})["features"][0]["own"]  # own, no history yet
    assert out["card_normal"]["transactions"] == 20


def _recent(n: int, capacity: int) -> RecentDecisions:
    ring = RecentDecisions(len(FEATURE_NAMES), capacity)
    for start in range(0, n, 7):  # batches of 7, as the answer path adds them
        idx = np.arange(start, min(n, start + 7))
        x = np.zeros((len(idx), len(FEATURE_NAMES)))
        x[:, AMOUNT] = idx * 10.0
        ring.add(x, idx / n, np.zeros(len(idx), np.int8), idx % 4, idx % 6, idx + 1000)
    return ring


def test_the_ring_keeps_the_newest_rows_in_order() -> None:
    rows = _recent(25, capacity=10).rows()
    assert rows.tx_keys.tolist() == list(range(1015, 1025))
    assert rows.x[:, AMOUNT].tolist() == [10.0 * i for i in range(15, 25)]
    assert len(_recent(4, capacity=10).rows()) == 4


def test_a_preview_counts_what_the_proposed_rules_change_against_a_direct_count() -> None:
    rows = _recent(200, capacity=500).rows()
    rule = {"id": "big", "when": "amount > 1500", "action": "REVIEW"}
    listed = Policy.build(1, [], {"block_users": np.array([2], np.int64)})
    proposed = Policy.build(2, [rule], {"block_users": np.array([2], np.int64)})
    labels = {1000 + i: bool(i % 2) for i in range(0, 200, 3)}  # some labelled
    out = preview(listed, proposed, rows, labels)
    amounts, users = rows.x[:, AMOUNT], rows.users
    newly = (amounts > 1500) & (users != 2)  # the list blocks card 2 under both
    assert out["changed"] == int(newly.sum()) == out["changes"]["LEGIT->REVIEW"]
    assert out["current"]["decisions"]["BLOCK"] == int(np.sum(users == 2))
    assert out["proposed"]["decisions"]["REVIEW"] == int(newly.sum())
    assert out["rules"]["proposed"]["big"]["hits"] == int(np.sum(amounts > 1500))
    assert out["rules"]["proposed"]["big"]["changed"] == int(newly.sum())
    labelled = np.isin(rows.tx_keys, list(labels))
    fraud = np.array([labels.get(k, False) for k in rows.tx_keys.tolist()])
    flagged = newly | (users == 2)
    assert out["labelled"] == int(labelled.sum())
    assert out["proposed"]["frauds_caught"] == int(np.sum(flagged & labelled & fraud))
    assert out["proposed"]["false_alarms"] == int(np.sum(flagged & labelled & ~fraud))


def test_the_pipeline_keeps_first_answers_only_for_the_preview() -> None:
    from actors.client.local import LocalShardClient
    from deployments.http.schemas import TransactionIn
    from deployments.scoring.pipeline import ScoringPipeline
    from policy.decision import Thresholds
    from tests.code.test_pipeline import FakeModel

    ring = RecentDecisions(len(FEATURE_NAMES), 1_000)
    p = ScoringPipeline(LocalShardClient(1, 1), FakeModel(), Thresholds(), recent=ring)
    txs = [
        TransactionIn.model_validate({
            "transaction_id": f"r{i}", "user_id": f"c{i % 7}", "terminal_id": f"k{i % 5}",
            "amount": 10.0 + i, "timestamp": 1_700_000_000 + 60 * i,
        })
        for i in range(60)
    ]  # fmt: skip

    async def go() -> list[list[float]]:
        answers = []
        for a in range(0, len(txs), 20):
            answers += await p.score(txs[a : a + 20], include_features=True)
            await p.score(txs[a : a + 3])  # retries: answered as before, not kept again
        return [list(a.features.values()) for a in answers]  # type: ignore[union-attr]

    features = asyncio.run(go())
    rows = ring.rows()
    assert len(rows) == 60 and len(set(rows.tx_keys.tolist())) == 60
    np.testing.assert_allclose(rows.x, np.array(features, np.float64), rtol=0, atol=1e-12)


def test_the_console_serves_its_export_by_name_only(tmp_path: Path) -> None:
    (tmp_path / "case").mkdir()
    (tmp_path / "_next" / "static").mkdir(parents=True)
    (tmp_path / "index.html").write_text("<html>live</html>")
    (tmp_path / "case" / "index.html").write_text("<html>case</html>")
    (tmp_path / "_next" / "static" / "a.js").write_text("1")
    files = ConsoleFiles(tmp_path)
    assert files.built
    assert files.find("") is not None and files.find("").media_type == "text/html"  # type: ignore[union-attr]
    assert files.find("case/") == files.find("case") == files.find("case/index.html")
    assert files.find("_next/static/a.js").media_type == "text/javascript"  # type: ignore[union-attr]
    for asked in ("../index.html", "case/../index.html", "/etc/passwd", "_next", "missing.js"):
        assert files.find(asked) is None
    assert not ConsoleFiles(tmp_path / "absent").built
