"""The console's live numbers: rates, decision mix, latency, scores, recent flags."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policy.decision import TIER_NAMES

SCORE_BINS = np.linspace(0.0, 1.0, 21)


@dataclass
class LiveStats:
    window_s: int = 120  # per-second timeline kept
    latency_window_s: float = 10.0
    recent_max: int = 25
    decisions: np.ndarray = field(default_factory=lambda: np.zeros(3, np.int64))
    score_counts: np.ndarray = field(
        default_factory=lambda: np.zeros(len(SCORE_BINS) - 1, np.int64)
    )
    timeline: deque[list[int]] = field(default_factory=deque)  # [second, n, review, block]
    latencies: deque[tuple[float, np.ndarray]] = field(default_factory=deque)
    recent: deque[dict[str, Any]] = field(default_factory=deque)
    shadow: dict[str, dict[str, Any]] = field(default_factory=dict)
    drift: dict[str, dict[str, Any]] = field(default_factory=dict)  # by replica

    def add(self, tiers: np.ndarray, scores: np.ndarray, now: float) -> None:
        n = len(tiers)
        if not n:
            return
        counts = np.bincount(tiers, minlength=3)
        self.decisions += counts
        self.score_counts += np.histogram(np.clip(scores, 0, 1), SCORE_BINS)[0]
        second = int(now)
        if self.timeline and self.timeline[-1][0] == second:
            row = self.timeline[-1]
            row[1] += n
            row[2] += int(counts[1])
            row[3] += int(counts[2])
        else:
            self.timeline.append([second, n, int(counts[1]), int(counts[2])])
        while self.timeline and self.timeline[0][0] <= second - self.window_s:
            self.timeline.popleft()

    def flagged(self, record: dict[str, Any]) -> None:
        self.recent.appendleft(record)
        while len(self.recent) > self.recent_max:
            self.recent.pop()

    def observe(self, latencies_ms: np.ndarray, now: float) -> None:
        if len(latencies_ms):
            self.latencies.append((now, np.asarray(latencies_ms, np.float64)))
        while self.latencies and self.latencies[0][0] < now - self.latency_window_s:
            self.latencies.popleft()

    def compare(self, replica: str, shadow: dict[str, Any]) -> None:
        """The latest shadow agreement a replica reported (each replica counts its own)."""
        self.shadow[replica] = shadow

    def drifted(self, replica: str, report: dict[str, Any]) -> None:
        """A replica's latest drift report (`policy.drift.DriftMonitor.report`)."""
        self.drift[replica] = report

    def drift_summary(self) -> dict[str, Any]:
        """The service's drift: in alert when any replica is; each column's largest PSI
        over the replicas whose window is ready (each compares its own share of traffic
        with its own reference); and every replica's report."""
        reports = list(self.drift.values())
        ready = [r for r in reports if r.get("psi")]
        worst: dict[str, float] = {}
        for r in ready:
            for column, value in r["psi"].items():
                worst[column] = max(worst.get(column, 0.0), value)
        over = sorted({c for r in ready for c in r.get("over", [])})
        state = "alert" if over else "ok" if ready else "warming"
        return {"state": state, "over": over, "psi": worst or None, "replicas": self.drift}

    def snapshot(self, now: float) -> dict[str, Any]:
        self.observe(np.empty(0), now)
        lat = np.concatenate([a for _, a in self.latencies]) if self.latencies else np.empty(0)
        recent_5s = [r for r in self.timeline if r[0] >= int(now) - 5 and r[0] < int(now)]
        shadow = [s for s in self.shadow.values() if s.get("version")]
        compared = sum(s["compared"] for s in shadow)
        return {
            "transactions": int(self.decisions.sum()),
            "tps": sum(r[1] for r in recent_5s) / 5.0,
            "decisions": dict(zip(TIER_NAMES, self.decisions.tolist(), strict=True)),
            "latency_ms": {
                "p50": float(np.percentile(lat, 50)) if len(lat) else None,
                "p99": float(np.percentile(lat, 99)) if len(lat) else None,
                "requests": len(lat),
                "window_s": self.latency_window_s,
            },
            "score_histogram": {"edges": SCORE_BINS.tolist(), "counts": self.score_counts.tolist()},
            "timeline": [list(r) for r in self.timeline],
            "recent_flagged": list(self.recent),
            "drift": self.drift_summary(),
            "shadow": {
                "versions": sorted({s["version"] for s in shadow}),
                "compared": compared,
                "agreement": sum(s["agreed"] for s in shadow) / compared if compared else None,
                "mean_abs_score_diff": sum(s["abs_diff_sum"] for s in shadow) / compared
                if compared
                else None,
            },
        }
