"""Reason codes, rules and lists, the review queue and labels, without Ray: the pipeline and
the desk in-process (the same classes the actors run)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from actors.client.local import LocalShardClient
from actors.store.backends import MemoryStore
from deployments.http.schemas import LabelIn
from deployments.scoring.desk_service import DeskService, ReviewConflict, ReviewNotFound
from deployments.scoring.pipeline import ScoringPipeline
from policy.decision import Thresholds
from policy.rules import Rule
from tests.code.test_pipeline import FakeModel, tx


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def make(store: MemoryStore | None = None) -> tuple[LocalShardClient, ScoringPipeline, DeskService]:
    client = LocalShardClient(2, 2, store=store or MemoryStore())
    pipeline = ScoringPipeline(
        client, FakeModel(), Thresholds(review=0.5, block=0.9), sink=client.sink
    )
    return client, pipeline, DeskService(client.desk, pipeline)


def test_flagged_decisions_carry_reasons_and_enter_the_queue_once() -> None:
    client, p, _ = make()
    out = run(p.score([tx(1, amount=20.0), tx(2, amount=600.0), tx(3, "u2", amount=950.0)]))
    assert [o.decision for o in out] == ["LEGIT", "REVIEW", "BLOCK"]
    assert out[0].reasons is None  # LEGIT stays cheap: no explanation computed
    assert out[1].reasons[0]["feature"] == "TX_AMOUNT"
    assert out[1].reasons[0]["contribution"] == pytest.approx(0.6)
    # A retry answers the same and is neither queued nor counted again.
    again = run(p.score([tx(2, amount=600.0)]))
    assert again[0].decision == "REVIEW"
    page = run(client.desk.review_page("open", 10, 0, 0.0, None))
    assert [i["transaction_id"] for i in page["items"]] == ["tx2"] and page["open"] == 1
    stored = run(client.desk.transaction("tx3"))
    assert stored["decision"] == "BLOCK" and stored["reasons"][0]["feature"] == "TX_AMOUNT"
    assert "u2" not in str(stored)  # the card appears only as its digest
    live = run(client.desk.snapshot())
    assert live["transactions"] == 3 and live["decisions"] == {"LEGIT": 1, "REVIEW": 1, "BLOCK": 1}


def test_rules_and_lists_change_decisions_at_runtime_and_roll_back() -> None:
    _, p, desk = make()
    rule = Rule(id="big-burst", when="amount > 100 and tx_count_1h >= 2", action="REVIEW")
    described = run(desk.put_rules([rule], "first rule"))
    assert described["version"] == 1
    out = run(p.score([tx(1, amount=150.0), tx(2, amount=150.0, ts="2018-06-01T10:05:00")]))
    assert [o.decision for o in out] == ["LEGIT", "REVIEW"]
    assert out[1].rules == ["big-burst"] and out[1].reasons is not None
    run(desk.edit_list("block_terminals", ["t9"], [], "bad terminal"))
    blocked = run(p.score([tx(3, "u5", terminal="t9", amount=5.0)]))[0]
    assert blocked.decision == "BLOCK" and blocked.rules == ["list:block_terminals"]
    run(desk.edit_list("allow_users", ["u5"], [], "VIP"))  # allow beats block
    assert run(p.score([tx(4, "u5", terminal="t9", amount=5.0)]))[0].decision == "LEGIT"
    assert run(desk.rollback(1, ""))["version"] == 4  # history is kept: a new version
    assert run(p.score([tx(5, "u6", terminal="t9", amount=5.0)]))[0].decision == "LEGIT"
    with pytest.raises(ValueError, match="unknown name 'amt'"):
        Rule(id="bad", when="amt > 3", action="BLOCK")


def test_resolving_a_review_labels_the_terminal_and_survives_a_restart() -> None:
    store = MemoryStore()
    client, p, desk = make(store)
    run(p.score([tx(1, amount=600.0, terminal="t7")]))
    with pytest.raises(ReviewNotFound):
        run(desk.resolve("nope", "fraud", "ana", ""))
    resolved = run(desk.resolve("tx1", "fraud", "ana", "called the cardholder"))
    assert resolved["status"] == "fraud" and resolved["changed"]
    assert not run(desk.resolve("tx1", "fraud", "ana", ""))["changed"]  # same again: no-op
    with pytest.raises(ReviewConflict):
        run(desk.resolve("tx1", "legit", "bob", ""))
    run(desk.feedback([LabelIn(transaction_id="tx9", terminal_id="t1", is_fraud=True)]))
    labels = run(client.desk.labels(0, 10))
    assert [(r["transaction_id"], r["source"]) for r in labels["labels"]] == [
        ("tx1", "review"), ("tx9", "feedback"),
    ]  # fmt: skip
    # Terminal state saw the review's label: terminal risk is 1/1 once the delay has passed.
    later = run(p.score([tx(2, "u3", terminal="t7", amount=1.0, ts="2018-06-09T10:00:00")], True))
    assert later[0].features["TERMINAL_ID_RISK_30DAY_WINDOW"] == 1.0
    snap = run(client.desk.snapshot())
    assert snap["outcomes"]["frauds_caught"] == 1 and snap["outcomes"]["unmatched"] == 1
    # A restarted desk rebuilds the queue, the labels and the policy from its journal.
    restarted = LocalShardClient(2, 2, store=store)
    assert run(restarted.desk.review("tx1"))["status"] == "fraud"
    assert run(restarted.desk.labels(0, 10))["total"] == 2


def test_shadow_agreement_is_counted_without_changing_answers() -> None:
    from deployments.model.versions import Scored

    class WithShadow(FakeModel):
        async def score(self, x: np.ndarray) -> Scored:
            live = await super().score(x)
            return Scored(live.scores, live.version, np.zeros(len(x)), "shadow-0")

    client = LocalShardClient(1, 1)
    p = ScoringPipeline(client, WithShadow(), Thresholds(), sink=client)
    out = run(p.score([tx(1, amount=20.0), tx(2, "u2", amount=700.0)]))
    assert [o.decision for o in out] == ["LEGIT", "REVIEW"]
    assert (p.shadow.version, p.shadow.compared, p.shadow.agreed) == ("shadow-0", 2, 1)


def test_card_numbers_sent_as_ids_are_not_kept_by_the_desk() -> None:
    from features.ids import OFFLINE

    redact_pan, redact_pans = OFFLINE.redact, OFFLINE.redact_many
    pan = "4539578763621486"  # Luhn-valid test number
    assert redact_pan(pan).startswith("redacted:") and redact_pan(f"tx-{pan}") != f"tx-{pan}"
    assert redact_pan("tx-4539578763621487") == "tx-4539578763621487"  # not Luhn-valid
    assert redact_pan("order-2018-06-01-000123") == "order-2018-06-01-000123"

    # One scan over the whole batch decides; ids never join into one digit run.
    plain = ["4539578", "763621486", "tx-1", "order-2018-06-01-000123"]
    assert redact_pans(plain) == plain
    mixed = ["tx-1", f"tx-{pan}", "4539578763621487"]
    assert redact_pans(mixed) == [redact_pan(v) for v in mixed] != mixed
    client, p, desk = make()
    from tests.code.test_pipeline import tx as make_tx

    t = make_tx(1, user=pan, terminal=pan, amount=600.0).model_copy(update={"transaction_id": pan})
    run(p.score([t]))
    run(desk.feedback([LabelIn(transaction_id=pan, terminal_id=pan, is_fraud=True)]))
    state = repr(client.desk_state.log.decisions) + repr(client.desk_state.reviews.open)
    state += repr(client.desk_state.log.labels)
    assert pan not in state
    stored = run(client.desk.transaction(redact_pan(pan)))
    assert stored["decision"] == "REVIEW"
    resolved = run(desk.resolve(pan, "fraud", "ana", ""))  # found by the same raw id
    assert resolved["status"] == "fraud"


def test_thresholds_come_from_the_card_unless_pinned_and_cost_ones_only_when_asked() -> None:
    from deployments.model.served import ServedModel
    from deployments.scoring.decide_config import IngressConfig, thresholds_for
    from models.card import ModelDir

    card = ModelDir(Path(__file__).resolve().parents[2] / "models" / "default").read_card()
    assert card.cost_thresholds is not None
    served = ServedModel(version=card.version, card=card, model_dir="models/default")
    assert thresholds_for(IngressConfig(), served) == card.thresholds  # recall-first
    pinned = Thresholds(review=0.4, block=0.95)
    assert thresholds_for(IngressConfig(thresholds=pinned), served) == pinned
    chosen = thresholds_for(IngressConfig(thresholds=pinned, thresholds_from_model=True), served)
    assert (chosen.review, chosen.block) == (
        card.cost_thresholds.review,
        card.cost_thresholds.block,
    )
    assert chosen != pinned
    # A model without cost thresholds keeps the configured ones; none read yet: defaults.
    bare = served.model_copy(update={"card": card.model_copy(update={"cost_thresholds": None})})
    assert (
        thresholds_for(IngressConfig(thresholds=pinned, thresholds_from_model=True), bare) == pinned
    )
    assert thresholds_for(IngressConfig(thresholds_from_model=True), None) == Thresholds()
    with pytest.raises(ValueError, match="thresholds_from_mdl"):
        IngressConfig(thresholds_from_mdl=True)  # type: ignore[call-arg]


def test_desk_holds_each_new_row_with_its_own_fields() -> None:
    """A batch's rows are held column by column: each held decision must carry its own
    row's values, reasons and rules; retries and ids already held are skipped."""
    from actors.actor.decision_log import DecidedBatch
    from actors.actor.desk import Desk

    desk = Desk(0, 1, None, MemoryStore())
    n = 6
    batch = DecidedBatch(
        ids=[f"tx{i}" for i in range(n)],
        time_ms=np.arange(n, dtype=np.int64) * 1000 + 7,
        amount=np.linspace(1.5, 6.5, n),
        tier=np.array([0, 1, 0, 2, 0, 1], np.int8),
        score=np.linspace(0.1, 0.6, n),
        version="v1",
        policy_version=3,
        user=[f"u{i}" for i in range(n)],
        terminal=[f"k{i}" for i in range(n)],
        terminal_key=np.arange(n, dtype=np.int64) + 100,
        tx_key=np.arange(n, dtype=np.int64) + 200,
        duplicate=np.array([False, False, True, False, False, False]),
        reasons={1: [{"feature": "TX_AMOUNT"}], 3: [{"feature": "x"}]},
        rules={3: ["block-list"], 5: ["r5"]},
    )
    desk.log.add("tx4", desk._held(batch, [4], 1)[0][1])  # already held: left as it was
    assert desk.record(batch) == 4  # tx2 is a retry, tx4 already held
    for i in (0, 1, 3, 5):
        got = desk.log.get(f"tx{i}")
        assert got is not None
        assert (got["time_ms"], got["amount"], got["score"]) == (
            i * 1000 + 7, batch.amount[i], batch.score[i]
        )  # fmt: skip
        assert (got["card"], got["terminal"], got["terminal_key"], got["transaction_key"]) == (
            f"u{i}", f"k{i}", 100 + i, 200 + i
        )  # fmt: skip
        assert got["reasons"] == batch.reasons.get(i) and got["rules"] == batch.rules.get(i)
        assert got["policy_version"] == 3 and got["model_version"] == "v1"
    assert "tx2" not in desk.log and desk.log.get("tx4")["recorded_ms"] == 1
    # Rows are plain tuples, which the collector stops tracking (a tuple subclass it walks
    # on every full collection, and the log holds up to 200,000 rows).
    import gc

    gc.collect()
    assert all(type(row) is tuple for row in desk.log.decisions.values())
    assert not gc.is_tracked(desk.log.decisions["tx0"])  # LEGIT, no reasons: numbers, text
    assert sorted(desk.reviews.open) == ["tx1", "tx5"]


def test_decision_log_evicts_oldest_first() -> None:
    """Held decisions leave in arrival order."""
    from actors.actor.decision_log import DecisionLog

    held = (1, 2.0, 0, 0.1, "v1", 1, "u", "k", None, None, 5, 6, 7)
    log = DecisionLog(max_decisions=3)
    log.add_new(["a", "b"], [held, held])
    assert log.add("c", held) and not log.add("a", held)  # already held: unchanged
    log.add_new(["d", "e"], [held, held])
    assert list(log.decisions) == ["c", "d", "e"] == list(log.arrivals)
    assert log.get("d")["decision"] == "LEGIT" and log.get("d")["transaction_key"] == 7


def test_every_change_is_audited_with_its_key_and_survives_a_restart() -> None:
    store = MemoryStore()
    client, p, desk = make(store)
    rule = Rule(id="big", when="amount > 800", action="BLOCK")
    run(desk.put_rules([rule], "block big ones", key_id="ops"))
    run(desk.edit_list("block_users", ["4539578763621486", "u9"], [], "stolen", key_id="ops"))
    run(p.score([tx(2, amount=600.0)]))  # FakeModel: 0.6, a REVIEW
    run(desk.resolve("tx2", "legit", "ana", "cardholder confirmed", key_id="desk"))
    run(desk.rollback(1, "", key_id="ops"))
    run(client.desk.served_model(None, {"version": "m1", "shadow_version": None}))
    # Two replicas report the same served model: one entry.
    assert not run(client.desk.served_model(None, {"version": "m1", "shadow_version": None}))
    page = run(client.desk.audit_page(0, 100))
    actions = [(e["action"], e["key_id"]) for e in page["entries"]]
    assert actions == [
        ("policy.rules", "ops"),
        ("policy.list.block_users", "ops"),
        ("review.resolve", "desk"),
        ("policy.rollback", "ops"),
        ("model.served", "serve-deploy"),
    ]
    rules, listed, resolved, rolled, model = page["entries"]
    assert rules["before"]["rules"] == [] and rules["after"]["rules"][0]["id"] == "big"
    assert listed["before"]["list_sizes"]["block_users"] == 0
    assert listed["after"]["list_sizes"]["block_users"] == 2 and listed["comment"] == "stolen"
    assert (resolved["target"], resolved["before"], resolved["after"]) == ("tx2", "open", "legit")
    assert rolled["after"]["version"] == 3 and rolled["after"]["list_sizes"]["block_users"] == 0
    assert model["after"]["version"] == "m1" and model["before"] is None
    assert "4539578763621486" not in repr(page)  # list entries appear by count only
    assert run(client.desk.audit_page(3, 1))["entries"] == [rolled] and page["total"] == 5
    # Rebuilt from the journal, then from a snapshot: the same entries.
    again = LocalShardClient(2, 2, store=store)
    assert run(again.desk.audit_page(0, 100)) == page
    again.desk_state.checkpoint()
    assert run(LocalShardClient(2, 2, store=store).desk.audit_page(0, 100)) == page


def test_journal_records_written_before_audit_entries_still_replay() -> None:
    from actors.actor.desk import Desk

    desk = Desk(0, 1, None, MemoryStore())
    desk._apply(("policy", [], {}, "old", 5))  # the shape of an older record
    assert desk.audit.entries[0]["key_id"] == "unknown"
    assert desk.audit.entries[0]["action"] == "policy.put"


def test_two_editors_at_once_never_lose_an_edit() -> None:
    """Two replicas (two DeskServices on one desk) edit lists over the same version: without
    If-Match both edits stand (the loser is made again on the newer version); with If-Match
    the stale one gets 412 with the current version and stores nothing."""
    from actors.errors import Stale
    from policy.rules import list_keys

    client, p, first = make()
    second = DeskService(client.desk, p)
    base = run(first.policy())["version"]
    real_read = client.desk.current_policy
    raced = False

    async def read_then_race() -> dict[str, object]:
        nonlocal raced
        current = await real_read()
        if not raced:  # the other editor writes between this read and this write
            raced = True
            await second.edit_list("block_users", ["card-b"], [], "editor B")
        return current

    client.desk.current_policy = read_then_race  # type: ignore[method-assign]
    run(first.edit_list("block_users", ["card-a"], [], "editor A"))
    client.desk.current_policy = real_read  # type: ignore[method-assign]
    current = run(client.desk.current_policy())
    want = list_keys(["card-a", "card-b"], p.ids)
    assert sorted(current["lists"]["block_users"].tolist()) == sorted(want.tolist())
    assert current["version"] == base + 2

    # If-Match: both editors read version v; the second write is refused, nothing stored.
    v = current["version"]
    run(first.edit_list("block_users", ["card-c"], [], "A", if_match=v))
    with pytest.raises(Stale) as e:
        run(second.put_rules([Rule(id="r", when="amount > 5", action="REVIEW")], "B", if_match=v))
    assert e.value.status == 412 and e.value.body()["version"] == v + 1
    after = run(client.desk.current_policy())
    assert after["version"] == v + 1 and after["rules"] == []
    with pytest.raises(Stale):
        run(second.rollback(1, "B", if_match=v))
    assert run(second.rollback(1, "B", if_match=v + 1))["version"] == v + 2
