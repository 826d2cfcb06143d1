"""Prometheus metrics through Ray's metrics API (exported by every Ray node's agent).

Ray prefixes each name with `ray_`: `fraud_decisions` is scraped as `ray_fraud_decisions`.
Per-batch numbers are added as counts (one call per decision tier / score bin / shard), not
per transaction, so a 4,096-transaction batch costs a few dozen calls.
"""

from __future__ import annotations

from collections import Counter

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
        self._statuses: Counter[int] = Counter()
        self._retried = {"shard_call": 0, "terminal_write": 0, "late_card_step": 0}
        self._degraded: Counter[str] = Counter()
        self._serving: dict[str, str] = {}  # role -> the version model_info shows as 1

    def batch(
        self, tiers: np.ndarray, scores: np.ndarray, shard_sizes: dict[int, int], duplicates: int
    ) -> None:
        for tier, n in enumerate(np.bincount(tiers, minlength=3).tolist()):
            if n:
                self.decisions.inc(n, {"decision": str(DECISIONS[tier])})
        counts = np.histogram(np.clip(scores, 0, 1), SCORE_BINS)[0]
        for i in np.flatnonzero(counts):
            self.scores.inc(int(counts[i]), {"bin": f"{SCORE_BINS[i]:.1f}-{SCORE_BINS[i + 1]:.1f}"})
        for shard, n in shard_sizes.items():
            self.shard_transactions.inc(n, {"shard": str(shard)})
        if duplicates:
            self.dedup_hits.inc(duplicates)

    def request(self, route: str, seconds: float) -> None:
        self.latency.observe(seconds, {"route": route})

    def response(self, status: int) -> None:
        """Count one answer here; `flush` exports the counts (no Ray call per request)."""
        self._statuses[status] += 1

    def flush(self, totals: dict[str, int], degraded: Counter[str], unsent: int, late: int) -> None:
        """The report tick: the answers counted since the last one, and the growth of the
        replica's running totals (`totals`: retries by what was retried; `degraded`:
        degraded answers by reason)."""
        statuses, self._statuses = self._statuses, Counter()
        for status, n in statuses.items():
            self.responses.inc(n, {"status": str(status)})
        for what, total in totals.items():
            if total > self._retried.get(what, 0):
                self.retries.inc(total - self._retried.get(what, 0), {"what": what})
            self._retried[what] = total
        for reason, total in degraded.items():
            if total > self._degraded[reason]:
                self.degraded.inc(total - self._degraded[reason], {"reason": reason})
            self._degraded[reason] = total
        self.outbox.set(unsent)
        self.late.set(late)

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
