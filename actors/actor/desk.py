"""The analyst's desk: decision log, review queue, labels, rules and lists, live numbers.

One actor (few writes per second: one per scored batch), journaled like a shard through the
same `StateStore`, so reviews, labels and every policy version survive a restart. LEGIT
decisions and the live counters are kept in memory only: they are a recent view, not a
record (the review queue and labels are the record).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from actors.actor.audit_log import AuditLog, policy_summary
from actors.actor.decision_log import TIER, DecidedBatch, DecisionLog, HeldRow, Outcomes, as_record
from actors.actor.journal import Journaled
from actors.actor.live_stats import LiveStats
from actors.actor.policy_store import PolicyStore
from actors.actor.review_queue import OUTCOMES, AlreadyResolved, ReviewQueue
from actors.actor.webhooks import Webhooks
from policy.decision import LEGIT, REVIEW


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class PolicyWrite:
    """What `Desk.put_policy` did: stored a new version, or found another one current."""

    stored: bool
    version: int  # the new version, or the current one when nothing was stored


class Desk(Journaled):
    """The desk actor's state and methods; `actors.client.desk.DeskClient` calls them."""

    kind = "desk"

    def _init_state(self) -> None:
        self.log = DecisionLog()
        self.reviews = ReviewQueue()
        self.policies = PolicyStore()
        self.live = LiveStats()
        self.audit = AuditLog()
        self.duplicates = 0
        self.hooks = Webhooks(self.settings.webhooks, self._hooked)

    def _started(self) -> None:
        if not self.reader:
            self.hooks.start()

    def _hooked(self, delivery_id: str, status: str, attempts: int, last: str | None) -> None:
        """A delivery ended (the sender's callback): journaled, so a restart sends it no
        more."""
        self._submit(("webhooked", delivery_id, status, attempts, last))

    # -- writes from the scoring path ---------------------------------------------------------
    def record(self, batch: DecidedBatch) -> int:
        """Hold a scored batch's decisions; flagged ones are journaled first. Retries of
        transactions already decided are skipped, so nothing is counted twice."""
        at = now_ms()
        ids, held_now = batch.ids, self.log.decisions
        retries = np.asarray(batch.duplicate).tolist()
        fresh = [
            j
            for j, (tx_id, retry) in enumerate(zip(ids, retries, strict=True))
            if not retry and tx_id not in held_now
        ]
        self.duplicates += len(ids) - len(fresh)
        if not fresh:
            return 0
        rows = self._held(batch, fresh, at)
        flagged = [(tx, h) for tx, h in rows if h[TIER] != LEGIT]
        if flagged:
            self._submit(("flagged", flagged))  # durable before the scoring path answers
            rows = [(tx, h) for tx, h in rows if h[TIER] == LEGIT]
        self.log.add_new([tx for tx, _ in rows], [h for _, h in rows])  # unique, not held
        idx = np.asarray(fresh)
        self.live.add(np.asarray(batch.tier)[idx], np.asarray(batch.score)[idx], time.time())
        for tx_id, held in flagged:
            self.live.flagged(as_record(tx_id, held))
        return len(fresh)

    def record_many(self, batches: list[DecidedBatch]) -> int:
        """`record` each batch, in order (a replica's outbox delivered in one call)."""
        return sum(self.record(b) for b in batches)

    @staticmethod
    def _held(batch: DecidedBatch, rows: list[int], at: int) -> list[tuple[str, HeldRow]]:
        """(id, row in `Held`'s field order) for these rows of a batch, column by column: a
        NumPy scalar per field and row cost more than the rest of the desk's work."""
        pick: list[int] | slice = slice(None) if len(rows) == len(batch.ids) else rows

        def numbers(values: np.ndarray) -> list[Any]:  # Python ints and floats
            picked: list[Any] = np.asarray(values)[pick].tolist()
            return picked

        def texts(values: list[str]) -> list[str]:
            return list(values) if isinstance(pick, slice) else [values[j] for j in pick]

        n = len(rows)
        reasons, rules = batch.reasons, batch.rules
        held: Iterator[HeldRow] = zip(  # plain tuples in `Held`'s field order
            numbers(batch.time_ms), numbers(batch.amount), numbers(batch.tier),
            numbers(batch.score), repeat(batch.version, n), repeat(int(batch.policy_version), n),
            texts(batch.user), texts(batch.terminal), map(reasons.get, rows),
            map(rules.get, rows), repeat(at, n), numbers(batch.terminal_key),
            numbers(batch.tx_key), strict=True,
        )  # fmt: skip
        return list(zip(texts(batch.ids), held, strict=True))

    def tick(
        self,
        replica: str,
        batches: list[DecidedBatch],
        latencies_ms: np.ndarray,
        shadow: dict[str, Any],
        drift: dict[str, Any] | None = None,
    ) -> dict[str, int]:
        """An ingress replica's periodic report: its LEGIT-only batches, request latencies,
        shadow agreement since the last one and its drift (`policy.drift`). Answers what
        the replica needs back."""
        for batch in batches:
            self.record(batch)
        self.live.observe(latencies_ms, time.time())
        self.live.compare(replica, shadow)
        if drift is not None:
            was = self.live.drift_summary()["state"]
            self.live.drifted(replica, drift)
            summary = self.live.drift_summary()
            if summary["state"] == "alert" and was != "alert" and self.hooks.wanted("drift.alert"):
                alert = {k: summary[k] for k in ("state", "over", "psi")}
                self._submit(("drift", now_ms(), alert))  # its webhook, made once
        return {"policy_version": self.policies.version, "reviews_open": len(self.reviews.open)}

    def label(self, ids: list[str], is_fraud: list[bool], source: str) -> int:
        """Labels from chargebacks (`/v1/feedback`) or reviews; returns how many were new."""
        new: int = self._submit(("label", list(ids), [bool(v) for v in is_fraud], source, now_ms()))
        return new

    def resolve(
        self, tx_id: str, outcome: str, analyst: str, note: str, key_id: str | None = None
    ) -> dict[str, Any]:
        """Resolve a review: {"status": ok|unchanged|not_found|conflict, "review": ...}.
        `key_id`: the API key that asked (for the audit log)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        item = self.reviews.get(tx_id)
        if item is None:
            return {"status": "not_found", "review": None}
        if item["status"] != "open":
            same = item["status"] == outcome
            return {"status": "unchanged" if same else "conflict", "review": item}
        review = self._submit(("resolve", tx_id, outcome, analyst, note, now_ms(), key_id))
        return {"status": "ok", "review": review}

    def put_policy(
        self,
        rules: list[dict[str, Any]],
        lists: dict[str, np.ndarray],
        comment: str,
        key_id: str | None = None,
        action: str = "policy.put",
        based_on: int | None = None,
    ) -> PolicyWrite:
        """Store a new policy version (already validated by the caller), unless `based_on`
        names a version that is no longer current: then nothing is stored, and the answer
        says which version is. The desk runs one call at a time, so this compare-and-set is
        atomic: two editors never both write over the same version. `action` names the
        change for the audit log (policy.rules, policy.list.<name>, policy.rollback)."""
        if based_on is not None and based_on != self.policies.version:
            return PolicyWrite(False, self.policies.version)
        op = ("policy", rules, lists, comment, now_ms(), key_id, action)
        version: int = self._submit(op)
        return PolicyWrite(True, version)

    def served_model(self, before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
        """Note a change of the served model (versions live and in shadow), as every ingress
        replica sees it: recorded once, however many replicas report it."""
        last = self.audit.last("model.served")
        if last is not None and last["after"] == after:
            return False
        self._submit(
            ("audit", now_ms(), "serve-deploy", "model.served", "ModelScorer", before, after)
        )
        return True

    def audit_page(self, offset: int, limit: int) -> dict[str, Any]:
        return self.audit.page(offset, limit)

    def webhooks(self) -> dict[str, Any]:
        """Configured endpoints (never their secrets), pending and recent deliveries."""
        return self.hooks.report()

    # -- the journal --------------------------------------------------------------------------
    def _apply(self, op: tuple[Any, ...]) -> Any:
        kind = op[0]
        if kind == "flagged":
            wanted = self.hooks.wanted("decision.flagged")
            for tx_id, row in op[1]:
                held = tuple(row)
                self.log.add(tx_id, held)
                if held[TIER] == REVIEW:
                    self.reviews.add(as_record(tx_id, held))
                if wanted:
                    record = as_record(tx_id, held)
                    self.hooks.emit("decision.flagged", tx_id, record, record["recorded_ms"])
            return None
        if kind == "label":
            _, ids, values, source, at = op
            return sum(self.log.label(t, v, source, at) for t, v in zip(ids, values, strict=True))
        if kind == "resolve":
            _, tx_id, outcome, analyst, note, at, *who = op  # older records name no key
            try:
                review, _ = self.reviews.resolve(tx_id, outcome, analyst, note, at)
            except (KeyError, AlreadyResolved):  # replaying a resolution already applied
                return self.reviews.get(tx_id)
            self.log.label(tx_id, outcome == "fraud", "review", at)
            self.audit.add(
                at, who[0] if who else None, "review.resolve", tx_id, "open", outcome, note
            )
            payload = {"transaction_id": tx_id, "outcome": outcome, "analyst": analyst,
                       "note": note}  # fmt: skip
            self.hooks.emit("review.resolved", f"{tx_id}:{at}", payload, at)
            return review
        if kind == "policy":
            _, rules, lists, comment, at, *who = op
            key_id, action = who if who else (None, "policy.put")
            before = policy_summary(self.policies.current())
            version = self.policies.put(rules, lists, comment, at)
            after = policy_summary(self.policies.current())
            self.audit.add(at, key_id, action, "policy", before, after, comment)
            return version
        if kind == "audit":
            _, at, key_id, action, target, before, after = op
            if action == "model.served":
                change = {"before": before, "after": after}
                self.hooks.emit("model.changed", str(at), change, at)
            return self.audit.add(at, key_id, action, target, before, after)
        if kind == "drift":
            _, at, alert = op
            self.hooks.emit("drift.alert", str(at), alert, at)
            return None
        if kind == "webhooked":
            _, delivery_id, status, attempts, last = op
            self.hooks.finished(delivery_id, status, attempts, last)
            return None
        raise ValueError(f"unknown desk operation {kind!r}")

    def _capture(self, full: bool) -> dict[str, Any]:
        """The whole desk, as shallow copies: every row, review, version and entry it holds
        is replaced, never changed in place, so the writer can encode them off the lock."""
        log, reviews = self.log, self.reviews
        return {
            "log": {
                "max_decisions": log.max_decisions,
                "decisions": dict(log.decisions),
                "labels": dict(log.labels),
                "outcomes": vars(log.outcomes).copy(),
            },
            "reviews": {
                "max_resolved": reviews.max_resolved,
                "open": dict(reviews.open),
                "resolved": dict(reviews.resolved),
            },
            "policies": list(self.policies.versions),
            "audit": list(self.audit.entries),
            "webhooks": self.hooks.capture(),
        }

    def _load(self, form: dict[str, Any]) -> None:
        log, reviews = form["log"], form["reviews"]
        decisions = {tx: tuple(row) for tx, row in log["decisions"].items()}
        self.log = DecisionLog(
            max_decisions=int(log["max_decisions"]),
            decisions=decisions,  # rows in `Held`'s field order
            labels={tx: tuple(label) for tx, label in log["labels"].items()},
            outcomes=Outcomes(**log["outcomes"]),
            arrivals=deque(decisions),
        )
        self.reviews = ReviewQueue(
            int(reviews["max_resolved"]), OrderedDict(reviews["open"]),
            OrderedDict(reviews["resolved"]),
        )  # fmt: skip
        self.policies = PolicyStore(list(form["policies"]))
        self.audit = AuditLog(list(form["audit"]))
        self.hooks.load(form.get("webhooks"))  # a checkpoint from before webhooks has none

    # -- reads --------------------------------------------------------------------------------
    def transaction(self, tx_id: str) -> dict[str, Any] | None:
        return self.log.get(tx_id)

    def label_of(self, tx_id: str) -> dict[str, Any] | None:
        return self.log.label_of(tx_id)

    def case(self, tx_id: str, card_limit: int, terminal_limit: int) -> dict[str, Any] | None:
        """A held decision with its review and the recent decisions of its card and its
        terminal (`DecisionLog.related`); None when the decision is no longer held."""
        record = self.log.get(tx_id)
        if record is None:
            return None
        cards, terminals = self.log.related(tx_id, card_limit, terminal_limit)
        return {
            "transaction": record,
            "review": self.reviews.get(tx_id),
            "card_history": cards,
            "terminal_history": terminals,
        }

    def labels_by_key(self, keys: list[int]) -> dict[int, bool]:
        return self.log.labels_by_key(keys)

    def review_page(
        self, status: str, limit: int, offset: int, min_score: float, rule: str | None
    ) -> dict[str, Any]:
        return {
            "items": self.reviews.page(status, limit, offset, min_score, rule),
            "open": len(self.reviews.open),
            "resolved": len(self.reviews.resolved),
        }

    def review(self, tx_id: str) -> dict[str, Any] | None:
        return self.reviews.get(tx_id)

    def labels(self, offset: int, limit: int) -> dict[str, Any]:
        return {"labels": self.log.label_rows(offset, limit), "total": len(self.log.labels)}

    def policy_version(self) -> int:
        return self.policies.version

    def policy(self, version: int | None = None) -> dict[str, Any] | None:
        return self.policies.current() if version is None else self.policies.get(version)

    def policy_history(self) -> list[dict[str, Any]]:
        return self.policies.history()

    def snapshot(self) -> dict[str, Any]:
        """Everything the live view shows, in one call."""
        out = self.live.snapshot(time.time())
        out["outcomes"] = vars(self.log.outcomes).copy()
        out["reviews"] = {
            "open": len(self.reviews.open),
            "oldest": self.reviews.page("open", limit=10),
        }
        out["policy_version"] = self.policies.version
        return out

    def stats(self) -> dict[str, Any]:
        return {
            "kind": "desk",
            "decisions_held": len(self.log.decisions),
            "labels": len(self.log.labels),
            "reviews_open": len(self.reviews.open),
            "reviews_resolved": len(self.reviews.resolved),
            "policy_version": self.policies.version,
            "duplicates_skipped": self.duplicates,
            "seq": self.seq,
            "recovered_records": self.replayed,
        }
