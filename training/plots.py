"""Pictures for the model card: PR curve with the decision points, rates vs threshold."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
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
