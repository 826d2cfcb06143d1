"""The rule language refuses what it cannot evaluate, bounds what it walks, and a rule that
fails at evaluation costs that rule, never the transaction."""

from __future__ import annotations

import ast

import numpy as np
import pytest

from features.spec import FEATURE_NAMES
from policy.expressions import MAX_DEPTH, Condition, RuleSyntaxError, parse
from policy.rules import CompiledRule, Policy, Rule
from tests.code.test_desk import make, run
from tests.code.test_pipeline import tx


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("amount > 1" + "0" * 400, "too large for a float"),
        ("amount > 1e309", "too large for a float"),
        ("amount > " + "+" * 480 + "1", f"deeper than {MAX_DEPTH}"),
        ("amount > " + "-" * 400 + "1", f"deeper than {MAX_DEPTH}"),
        ("not " * 100 + "amount", f"deeper than {MAX_DEPTH}"),
    ],
)
def test_conditions_it_could_not_evaluate_are_refused(text: str, why: str) -> None:
    with pytest.raises(RuleSyntaxError, match=why):
        parse(text)
    with pytest.raises(ValueError, match=why):  # a 422 naming `rules.0.when`, not a 500
        Rule(id="typo", when=text, action="REVIEW")


def test_ordinary_conditions_still_parse() -> None:
    for text in ("amount > 1000 and tx_count_1h >= 5", "score > 0.3 or amount * 2 > 1e6",
                 "(" * 20 + "amount" + ")" * 20 + " > 1", "-amount < -5"):  # fmt: skip
        assert parse(text).text == text


def test_a_rule_that_fails_at_evaluation_is_counted_and_the_rest_applies(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A condition built past the checks (as a rule stored before them was) raises when
    evaluated: the batch keeps its tiers and the other rules, the failure is counted."""
    tree = ast.parse("amount > " + "9" * 401, mode="eval")
    broken = CompiledRule(
        Rule.model_construct(id="broken", when="amount > 9...", action="BLOCK"),
        Condition("amount > 9...", tree, frozenset({"amount"})),
    )
    good = Rule(id="good", when="amount > 100", action="REVIEW")
    policy = Policy(1, (broken, CompiledRule(good, parse(good.when))))
    x = np.zeros((3, len(FEATURE_NAMES)))
    x[:, FEATURE_NAMES.index("TX_AMOUNT")] = [5.0, 500.0, 50.0]
    tiers, fired = policy.apply(np.zeros(3, np.int8), x, np.zeros(3), np.zeros(3, np.int64),
                                np.zeros(3, np.int64))  # fmt: skip
    assert tiers.tolist() == [0, 1, 0] and fired == [[], ["good"], []]
    assert policy.failures == {"broken": 1}
    assert policy.describe()["rule_failures"] == {"broken": 1}
    policy.apply(np.zeros(3, np.int8), x, np.zeros(3), np.zeros(3, np.int64),
                 np.zeros(3, np.int64))  # fmt: skip
    assert policy.failures == {"broken": 2}  # counted on every batch, logged once
    assert sum("broken" in r.getMessage() for r in caplog.records) == 1


def test_a_stored_rule_that_todays_checks_refuse_is_left_out_not_fatal() -> None:
    """A version stored before the checks: scoring goes on, the rule is reported."""
    _, pipeline, desk = make()
    stored = [
        {"id": "typo", "when": "amount > 1" + "0" * 400, "action": "BLOCK", "description": "",
         "enabled": True},
        {"id": "big", "when": "amount > 100", "action": "REVIEW", "description": "",
         "enabled": True},
    ]  # fmt: skip
    run(desk.desk.put_policy(stored, {}, "from before the checks", None, "policy.rules"))
    described = run(desk.policy())
    assert [r["id"] for r in described["rules"]] == ["big"]
    assert described["rule_failures"] == {"typo": 1}
    out = run(pipeline.score([tx(1, amount=150.0), tx(2, amount=5.0)]))
    assert [o.decision for o in out] == ["REVIEW", "LEGIT"] and out[0].rules == ["big"]
