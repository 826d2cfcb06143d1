"""Prometheus metrics through Ray's metrics API (exported by every Ray node's agent).

Ray prefixes each name with `ray_`: `fraud_decisions` is scraped as `ray_fraud_decisions`.
The answer path only counts (arrays and dicts: a few microseconds); the replica's report
tick hands the counts to Ray (`flush`), whose every metric call merges its tags in Python
(~20-50 us), so no Ray call sits on the answer path and a tick makes one call per decision
tier, score bin, shard and status however many answers it covers.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from ray.util import metrics

from policy.decision import DECISIONS

SCORE_BINS = np.round(np.linspace(0.0, 1.0, 11), 2)
LATENCY_BOUNDARIES_S = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]


class ServiceMetrics:
    def __init__(self) -> None:
        self.decisions = metrics.Counter(
            "fraud_decisions", "Decisions made, by decision.", tag_keys=("decision",)
        )
        self.scores = metrics.Counter(
            "fraud_scores", "Scored transactions by score bin (width 0.1).", tag_keys=("bin",)
        )
        self.latency = metrics.Histogram(
            "fraud_request_latency_seconds",
            "End-to-end latency of scoring requests inside the ingress.",
            boundaries=LATENCY_BOUNDARIES_S,
            tag_keys=("route",),
        )
        self.shard_transactions = metrics.Counter(
            "fraud_shard_transactions", "Transactions per card shard.", tag_keys=("shard",)
        )
        self.dedup_hits = metrics.Counter(
            "fraud_dedup_hits", "Retried transactions answered from the dedup index."
        )
        self.model_info = metrics.Gauge(
            "fraud_model_info", "1 for the model version serving.", tag_keys=("version", "role")
        )
        self.review_queue = metrics.Gauge("fraud_review_queue_length", "Open reviews.")
        self.drift_psi = metrics.Gauge(
            "fraud_drift_psi",
            "PSI of the replica's recent window against its model's reference, by column "
            "(each feature, and score).",
            tag_keys=("column",),
        )
        self.drift_alert = metrics.Gauge(
            "fraud_drift_alert", "1 while some column's PSI is past the alert bound."
        )
        self.policy_version = metrics.Gauge("fraud_policy_version", "Rules/lists version.")
        self.responses = metrics.Counter(
            "fraud_responses",
            "Answers by HTTP status (4xx: input or access refused; 429: rate limited; 503: "
            "a shard, the model or the state store away, or load shed).",
            tag_keys=("status",),
        )
        self.retries = metrics.Counter(
            "fraud_retries",
            "Calls tried again: a shard call (its actor restarting or silent past the call "
            "timeout) or a terminal write.",
            tag_keys=("what",),
        )
        self.outbox = metrics.Gauge(
            "fraud_outbox_unsent", "Flagged batches in the replica's outbox, not yet with the desk."
        )
        self.degraded = metrics.Counter(
            "fraud_degraded",
            "Answers given without some state, which missed the request's deadline (reason: "
            "card_state_late, terminal_state_late, card_and_terminal_state_late).",
            tag_keys=("reason",),
        )
        self.late = metrics.Gauge(
            "fraud_late_card_steps",
            "Transactions answered degraded whose card step waits for its shard to apply it.",
        )
        self.recorded = metrics.Counter(
            "fraud_decision_record_rows", "Decisions written to the decision record's files."
        )
        self.unrecorded = metrics.Gauge(
            "fraud_decision_record_held",
            "Decisions journaled by the replica and not yet in the record's files (grows "
            "while the record's storage refuses writes).",
        )
        self.unknown_fields = metrics.Counter(
            "fraud_unknown_fields",
            "Transaction fields this API does not know, dropped on arrival (never stored).",
        )
        self._recorded = 0
        self._unknown = 0
        self._statuses: Counter[int] = Counter()
        self._decided = np.zeros(len(DECISIONS), np.int64)  # per tier, since the last flush
        self._binned = np.zeros(len(SCORE_BINS) - 1, np.int64)  # per score bin
        self._per_shard: Counter[int] = Counter()
        self._duplicates = 0
        self._latencies: list[tuple[str, float]] = []
        self._retried = {"shard_call": 0, "terminal_write": 0, "late_card_step": 0}
        self._degraded: Counter[str] = Counter()
        self._serving: dict[str, str] = {}  # role -> the version model_info shows as 1

    def batch(
        self, tiers: np.ndarray, scores: np.ndarray, shard_sizes: dict[int, int], duplicates: int
    ) -> None:
        """Count a decided batch (exported by `flush`)."""
        np.add.at(self._decided, tiers, 1)
        # The bins of np.histogram over SCORE_BINS: [0, 0.1), ..., [0.9, 1.0].
        bins = np.searchsorted(SCORE_BINS, np.clip(scores, 0, 1), side="right") - 1
        np.add.at(self._binned, np.minimum(bins, len(self._binned) - 1), 1)
        self._per_shard.update(shard_sizes)
        self._duplicates += duplicates

    def request(self, route: str, seconds: float) -> None:
        """One request's latency, observed by `flush`."""
        self._latencies.append((route, seconds))

    def response(self, status: int) -> None:
        """Count one answer here; `flush` exports the counts (no Ray call per request)."""
        self._statuses[status] += 1

    def flush(
        self, totals: dict[str, int], degraded: Counter[str], unsent: int, late: int, unknown: int
    ) -> None:
        """The report tick: the answers counted since the last one, and the growth of the
        replica's running totals (`totals`: retries by what was retried; `degraded`:
        degraded answers by reason; `unknown`: unknown transaction fields dropped)."""
        statuses, self._statuses = self._statuses, Counter()
        for status, n in statuses.items():
            self.responses.inc(n, {"status": str(status)})
        self._flush_batches()
        for what, total in totals.items():
            if total > self._retried.get(what, 0):
                self.retries.inc(total - self._retried.get(what, 0), {"what": what})
            self._retried[what] = total
        for reason, total in degraded.items():
            if total > self._degraded[reason]:
                self.degraded.inc(total - self._degraded[reason], {"reason": reason})
            self._degraded[reason] = total
        if unknown > self._unknown:
            self.unknown_fields.inc(unknown - self._unknown)
        self._unknown = unknown
        self.outbox.set(unsent)
        self.late.set(late)

    def drift(self, report: dict[str, Any]) -> None:
        """This replica's drift: PSI per column once its window is ready, and the alert."""
        for column, value in (report.get("psi") or {}).items():
            self.drift_psi.set(value, {"column": column})
        self.drift_alert.set(1 if report.get("state") == "alert" else 0)

    def record(self, written: int, held: int) -> None:
        """The decision record's running total of rows written, and the rows held."""
        if written > self._recorded:
            self.recorded.inc(written - self._recorded)
        self._recorded = written
        self.unrecorded.set(held)

    def _flush_batches(self) -> None:
        decided, self._decided = self._decided, np.zeros_like(self._decided)
        for tier in np.flatnonzero(decided):
            self.decisions.inc(int(decided[tier]), {"decision": str(DECISIONS[tier])})
        binned, self._binned = self._binned, np.zeros_like(self._binned)
        for i in np.flatnonzero(binned):
            self.scores.inc(int(binned[i]), {"bin": f"{SCORE_BINS[i]:.1f}-{SCORE_BINS[i + 1]:.1f}"})
        per_shard, self._per_shard = self._per_shard, Counter()
        for shard, n in per_shard.items():
            self.shard_transactions.inc(n, {"shard": str(shard)})
        if self._duplicates:
            self.dedup_hits.inc(self._duplicates)
            self._duplicates = 0
        latencies, self._latencies = self._latencies, []
        for route, seconds in latencies:
            self.latency.observe(seconds, {"route": route})

    def state(
        self, version: str | None, shadow: str | None, open_reviews: int, policy: int
    ) -> None:
        for role, now in (("live", version), ("shadow", shadow)):
            before = self._serving.get(role)
            if before and before != now:  # a promotion, rollback or shadow change
                self.model_info.set(0, {"version": before, "role": role})
            if now:
                self.model_info.set(1, {"version": now, "role": role})
                self._serving[role] = now
            else:
                self._serving.pop(role, None)
        self.review_queue.set(open_reviews)
        self.policy_version.set(policy)
