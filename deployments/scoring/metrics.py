"""Prometheus metrics through Ray's metrics API (exported by every Ray node's agent).

Ray prefixes each name with `ray_`: `fraud_decisions` is scraped as `ray_fraud_decisions`.
Per-batch numbers are added as counts (one call per decision tier / score bin / shard), not
per transaction, so a 4,096-transaction batch costs a few dozen calls.
"""

from __future__ import annotations

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

    def state(
        self, version: str | None, shadow: str | None, open_reviews: int, policy: int
    ) -> None:
        if version:
            self.model_info.set(1, {"version": version, "role": "live"})
        if shadow:
            self.model_info.set(1, {"version": shadow, "role": "shadow"})
        self.review_queue.set(open_reviews)
        self.policy_version.set(policy)
