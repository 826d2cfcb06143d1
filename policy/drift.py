"""Drift: how far the scores and each model input have moved from a reference window.

A deciding replica takes the first `reference_transactions` it scores with a model as that
model's reference: per column (every feature of `features.spec.FEATURE_NAMES`, and the
score), quantile bin edges and the share of rows in each bin, missing values in a bin of
their own. It then keeps the bins of the newest `window_transactions` in a ring and, per
column, the population stability index (PSI) of that window against the reference. A PSI
above `alert_psi` (0.2, the usual mark of a significant shift) on any column puts the
monitor in alert. A new model starts a new reference.

Rows are only buffered on the answer path (`add`); the report tick bins them (`update`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

State = Literal["warming", "ok", "alert"]
EPSILON = 1e-4  # a bin's share where it holds nothing (PSI is undefined at 0)


class DriftSettings(BaseModel):
    """How the drift monitor compares: reference and window sizes, bins, the alert bound."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reference_transactions: int = Field(20_000, ge=100)
    window_transactions: int = Field(5_000, ge=100)
    bins: int = Field(10, ge=2, le=100)
    alert_psi: float = Field(0.2, gt=0)
    min_window: int = Field(
        1_000, ge=10, description="Transactions in the window before PSI is reported."
    )


def psi(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """PSI per row of two count matrices (columns: bins): sum of (c - r) * ln(c / r) over
    the shares, each bin at least `EPSILON`."""
    r = reference / np.maximum(reference.sum(axis=1, keepdims=True), 1)
    c = current / np.maximum(current.sum(axis=1, keepdims=True), 1)
    r, c = np.maximum(r, EPSILON), np.maximum(c, EPSILON)
    out: np.ndarray = ((c - r) * np.log(c / r)).sum(axis=1)
    return out


class DriftMonitor:
    """One replica's drift: a reference per model, a sliding window, PSI per column."""

    def __init__(self, columns: Sequence[str], settings: DriftSettings | None = None) -> None:
        self.columns = [*columns, "score"]
        self.settings = settings or DriftSettings()
        self.version: str | None = None
        self._buffer: list[tuple[np.ndarray, np.ndarray]] = []
        self.reset(None)

    def reset(self, version: str | None) -> None:
        """Start again: a new model (`version`) gets a new reference."""
        s, k = self.settings, len(self.columns)
        self.version = version
        self._reference_rows: list[np.ndarray] = []
        self._referenced = 0
        self.edges: list[np.ndarray] | None = None
        self.reference = np.zeros((k, s.bins + 1), np.int64)  # the last bin: missing
        self.current = np.zeros((k, s.bins + 1), np.int64)
        self._ring = np.zeros((s.window_transactions, k), np.int8)
        self._filled = self._at = 0

    def add(self, x: np.ndarray, scores: np.ndarray, version: str) -> None:
        """Buffer scored rows (features in model order, and their scores). Cheap: the
        answer path calls it; `update` does the work."""
        if version != self.version:
            self._buffer.clear()
            self.reset(version)
        self._buffer.append((x, scores))

    def update(self) -> None:
        """Bin the rows buffered since the last call: into the reference until it is full,
        then into the window."""
        if not self._buffer:
            return
        rows = np.column_stack([
            np.concatenate([x for x, _ in self._buffer]),
            np.concatenate([s for _, s in self._buffer]),
        ])  # fmt: skip
        self._buffer.clear()
        if self.edges is None:
            need = self.settings.reference_transactions - self._referenced
            self._reference_rows.append(rows[:need])
            self._referenced += len(rows[:need])
            rows = rows[need:]
            if self._referenced < self.settings.reference_transactions:
                return
            self._fix_reference(np.concatenate(self._reference_rows))
            self._reference_rows = []
        if len(rows):
            self._slide(self._bins(rows))

    def _fix_reference(self, rows: np.ndarray) -> None:
        qs = np.linspace(0, 1, self.settings.bins + 1)[1:-1]
        self.edges = []
        for j in range(rows.shape[1]):
            known = rows[:, j][~np.isnan(rows[:, j])]
            self.edges.append(np.unique(np.quantile(known, qs)) if len(known) else np.empty(0))
        bins = self._bins(rows)
        for j in range(len(self.columns)):
            self.reference[j] = np.bincount(bins[:, j], minlength=self.settings.bins + 1)

    def _bins(self, rows: np.ndarray) -> np.ndarray:
        """Each value's bin per column: by the reference's edges; missing in the last."""
        assert self.edges is not None
        out = np.empty(rows.shape, np.int8)
        for j, edges in enumerate(self.edges):
            col = rows[:, j]
            b = np.searchsorted(edges, col, side="right")
            out[:, j] = np.where(np.isnan(col), self.settings.bins, b)
        return out

    def _slide(self, bins: np.ndarray) -> None:
        size = len(self._ring)
        bins = bins[-size:]
        k = len(self.columns)
        cols = np.broadcast_to(np.arange(k), bins.shape)
        at = (self._at + np.arange(len(bins))) % size
        old = at[self._filled + np.arange(len(bins)) >= size]  # positions that held a row
        if len(old):
            leaving = self._ring[old]
            np.subtract.at(self.current, (np.broadcast_to(np.arange(k), leaving.shape), leaving), 1)
        self._ring[at] = bins
        np.add.at(self.current, (cols, bins), 1)
        self._at = int((self._at + len(bins)) % size)
        self._filled = min(size, self._filled + len(bins))

    def report(self) -> dict[str, Any]:
        """The state, the window's PSI per column against the reference (None while
        warming), and the columns above the alert bound."""
        s = self.settings
        ready = self.edges is not None and self._filled >= min(s.min_window, s.window_transactions)
        values = psi(self.reference, self.current) if ready else None
        by_column = (
            {c: round(float(v), 4) for c, v in zip(self.columns, values, strict=True)}
            if values is not None
            else None
        )
        over = sorted((c for c, v in (by_column or {}).items() if v > s.alert_psi))
        state: State = "warming" if values is None else "alert" if over else "ok"
        return {
            "state": state,
            "version": self.version,
            "reference": min(self._referenced, s.reference_transactions),
            "window": self._filled,
            "alert_psi": s.alert_psi,
            "psi": by_column,
            "over": over,
        }
