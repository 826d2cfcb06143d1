"""Pictures for the model card: PR curve with the decision points, rates vs threshold."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import precision_recall_curve


def threshold_plot(
    y: np.ndarray, scores: np.ndarray, review: float, block: float, path: Path, title: str
) -> None:
    """Left: precision-recall curve marking REVIEW and BLOCK; right: rates vs threshold."""
    precision, recall, thresholds = precision_recall_curve(y, scores)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.plot(recall, precision, color="#1f77b4")
    for t, name, colour in ((review, "REVIEW", "#ff7f0e"), (block, "BLOCK", "#d62728")):
        flagged = scores > t
        tp = np.sum(flagged & (y == 1))
        r = tp / max(np.sum(y == 1), 1)
        p = tp / max(np.sum(flagged), 1)
        ax1.scatter(
            [r], [p], color=colour, zorder=3, label=f"{name} > {t:.2f}: R={r:.2f} P={p:.2f}"
        )
    ax1.set(
        xlabel="recall",
        ylabel="precision",
        title="Precision-recall (test)",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    ax1.legend(loc="lower left", fontsize=8)
    ax1.grid(alpha=0.3)

    grid = np.linspace(0, 1, 201)
    pos, neg = max(np.sum(y == 1), 1), max(np.sum(y == 0), 1)
    rec = [np.sum((scores > g) & (y == 1)) / pos for g in grid]
    prec = [np.sum((scores > g) & (y == 1)) / max(np.sum(scores > g), 1) for g in grid]
    fpr = [np.sum((scores > g) & (y == 0)) / neg for g in grid]
    ax2.plot(grid, rec, label="recall")
    ax2.plot(grid, prec, label="precision")
    ax2.plot(grid, np.array(fpr) * 100, label="false-positive rate x100")
    for t in (review, block):
        ax2.axvline(t, color="grey", ls="--", lw=1)
    ax2.set(xlabel="score threshold", title="Rates vs threshold (test)", ylim=(0, 1.02))
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    del thresholds


def cost_plot(
    grid: np.ndarray, costs: np.ndarray, chosen: dict[str, Any], path: Path, title: str
) -> None:
    """Left: expected cost over (review, block) with the optimum and the current pair marked;
    right: cost vs review threshold at the chosen block threshold."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    shown = np.where(np.isfinite(costs), costs, np.nan)
    im = ax1.imshow(
        shown.T, origin="lower", extent=(grid[0], grid[-1], grid[0], grid[-1]), aspect="auto",
        cmap="viridis_r",
    )  # fmt: skip
    fig.colorbar(im, ax=ax1, label="expected cost")
    current = chosen["cost_at_current"]["thresholds"]
    ax1.scatter([chosen["review"]], [chosen["block"]], color="#d62728", marker="*", s=160,
                label=f"cheapest {chosen['review']:.2f}/{chosen['block']:.2f}: "
                f"{chosen['cost']['total']:,.0f}")  # fmt: skip
    ax1.scatter([current["review"]], [current["block"]], color="white", edgecolor="k",
                label=f"current {current['review']:.2f}/{current['block']:.2f}: "
                f"{chosen['cost_at_current']['total']:,.0f}")  # fmt: skip
    ax1.set(xlabel="REVIEW threshold", ylabel="BLOCK threshold", title="Cost (validation)")
    ax1.legend(loc="lower right", fontsize=8)
    j = int(np.argmin(np.abs(grid - chosen["block"])))
    ax2.plot(grid, shown[:, j], color="#1f77b4")
    ax2.axvline(chosen["review"], color="#d62728", ls="--", lw=1)
    ax2.set(xlabel="REVIEW threshold", ylabel="expected cost",
            title=f"Cost vs REVIEW threshold (BLOCK > {chosen['block']:.2f})")  # fmt: skip
    ax2.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
