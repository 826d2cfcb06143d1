"""Rules and lists applied on top of the model's decision, as one versioned `Policy`.

Precedence, strongest first (as in Stripe Radar): allow-list, block-list, ALLOW rules,
BLOCK rules, REVIEW rules, then the model's own decision. Lists hold 64-bit keys of hashed
ids (`features.ids.IdHasher`), never the ids themselves, so a card number put on a list is
not stored anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.ids import IdHasher
from policy.decision import BLOCK, LEGIT, REVIEW
from policy.expressions import Condition, RuleSyntaxError, parse

log = logging.getLogger(__name__)
LIST_NAMES = ("allow_users", "block_users", "allow_terminals", "block_terminals")
ListName = Literal["allow_users", "block_users", "allow_terminals", "block_terminals"]


class Rule(BaseModel):
    """`when` is a condition over features and `score`; `action` applies where it holds."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)  # `enabled: 0` is refused

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="Shown in reasons.")
    when: str = Field(min_length=1, max_length=500, examples=["amount > 1000 and tx_count_1h >= 5"])
    action: Literal["BLOCK", "REVIEW", "ALLOW"]
    description: str = Field("", max_length=500)
    enabled: bool = True

    @field_validator("when")
    @classmethod
    def _valid_condition(cls, v: str) -> str:
        try:
            parse(v)
        except RuleSyntaxError as e:
            raise ValueError(str(e)) from None
        return v


class RuleSet(BaseModel):
    """A rules file (`fraud backtest --rules`) or the body of `PUT /v1/policy/rules`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[Rule] = Field(default_factory=list, max_length=200)

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: list[Rule]) -> list[Rule]:
        seen: set[str] = set()
        for r in rules:
            if r.id in seen:
                raise ValueError(f"rule id {r.id!r} is used twice")
            seen.add(r.id)
        return rules


def list_keys(ids: Iterable[str], hasher: IdHasher) -> np.ndarray:
    """Sorted unique 64-bit keys of raw ids (under the service's key): what a list stores
    and matches on."""
    return np.unique(np.fromiter((hasher.key64(str(v)) for v in ids), np.int64))


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    condition: Condition


@dataclass(frozen=True)
class Policy:
    """One version of the rules and lists, ready to apply to scored batches."""

    version: int = 0
    rules: tuple[CompiledRule, ...] = ()  # the enabled ones
    lists: dict[str, np.ndarray] = field(default_factory=dict)
    all_rules: tuple[Rule, ...] = ()  # as submitted, disabled ones included
    # Rule id -> batches on which its condition failed to evaluate (it then fired on none of
    # their rows): a rule's failure costs that rule, never the transaction.
    failures: dict[str, int] = field(default_factory=dict, compare=False)

    @classmethod
    def build(
        cls, version: int, rules: Sequence[Rule | dict[str, Any]], lists: Mapping[str, Any]
    ) -> Policy:
        """A new version: anything invalid raises, so nothing invalid is ever stored."""
        parsed = RuleSet(rules=[Rule.model_validate(r) for r in rules]).rules
        compiled = tuple(CompiledRule(r, parse(r.when)) for r in parsed if r.enabled)
        keys = {n: np.asarray(lists.get(n, ()), np.int64) for n in LIST_NAMES}
        return cls(version, compiled, keys, tuple(parsed))

    @classmethod
    def load(
        cls, version: int, rules: Sequence[dict[str, Any]], lists: Mapping[str, Any]
    ) -> Policy:
        """A stored version: a rule that today's checks refuse (stored before they existed)
        is left out and reported as failing, so the rest of the policy still applies."""
        valid: list[Rule] = []
        failed: dict[str, int] = {}
        for raw in rules:
            try:
                valid.append(Rule.model_validate(raw))
            except ValueError:
                rule_id = str(raw.get("id", "?"))[:64]
                failed[rule_id] = failed.get(rule_id, 0) + 1
                log.warning("stored rule %s no longer passes validation: left out", rule_id)
        policy = cls.build(version, valid, lists)
        policy.failures.update(failed)
        return policy

    def apply(
        self,
        tiers: np.ndarray,
        x: np.ndarray,
        scores: np.ndarray,
        user_keys: np.ndarray,
        terminal_keys: np.ndarray,
    ) -> tuple[np.ndarray, list[list[str]]]:
        """Final tiers (0 LEGIT, 1 REVIEW, 2 BLOCK) and, per row, the rules and lists that hit."""
        out = np.asarray(tiers, np.int8).copy()
        n = len(out)
        hits: list[tuple[str, np.ndarray]] = []
        for action in ("REVIEW", "BLOCK", "ALLOW"):  # weakest first: later ones override
            for cr in self.rules:
                if cr.rule.action != action:
                    continue
                try:
                    mask = cr.condition.evaluate(x, scores)
                except Exception as e:  # counted and reported, never raised
                    failed = self.failures.get(cr.rule.id, 0)
                    self.failures[cr.rule.id] = failed + 1
                    if not failed:  # logged once: it may fail on every batch that follows
                        log.warning("rule %s fails to evaluate: %s", cr.rule.id, type(e).__name__)
                    continue
                if not mask.any():
                    continue
                if action == "REVIEW":
                    out[mask] = np.maximum(out[mask], REVIEW)
                else:
                    out[mask] = BLOCK if action == "BLOCK" else LEGIT
                hits.append((cr.rule.id, mask))
        for name, tier, keys in (
            ("block_terminals", BLOCK, terminal_keys),
            ("block_users", BLOCK, user_keys),
            ("allow_terminals", LEGIT, terminal_keys),
            ("allow_users", LEGIT, user_keys),
        ):
            listed = self.lists.get(name)
            if listed is not None and len(listed):
                mask = np.isin(keys, listed)
                if mask.any():
                    out[mask] = tier
                    hits.append((f"list:{name}", mask))
        fired: list[list[str]] = [[] for _ in range(n)] if hits else []
        for rule_id, mask in hits:
            for i in np.flatnonzero(mask):
                fired[i].append(rule_id)
        return out, fired

    def describe(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "rules": [r.model_dump() for r in self.all_rules],
            "list_sizes": {n: len(self.lists.get(n, ())) for n in LIST_NAMES},
            "rule_failures": dict(self.failures),
        }


def rule_hits(
    fired: list[list[str]], final: np.ndarray, other: np.ndarray, fraud: np.ndarray | None = None
) -> dict[str, dict[str, int]]:
    """Per rule or list (`Policy.apply`'s `fired`): rows it fired on (`hits`), those whose
    decision differs from `other`'s (`changed`: the model alone, or another policy), and,
    given labels, the frauds among its hits. `fraud backtest` and the rule preview count so."""
    out: dict[str, dict[str, int]] = {}
    for i, ids in enumerate(fired):
        for rule_id in ids:
            r = out.setdefault(rule_id, {"hits": 0, "changed": 0})
            r["hits"] += 1
            r["changed"] += int(final[i] != other[i])
            if fraud is not None:
                r["frauds"] = r.get("frauds", 0) + int(fraud[i])
    return out
