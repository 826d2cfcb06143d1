"""What decisions cost, and the REVIEW/BLOCK thresholds that cost least on labelled data.

A missed fraud loses its amount plus a chargeback fee; every REVIEW costs an analyst's time
(and catches the fraud it reviews); a BLOCKed good payment loses a share of its amount
(margin and a customer's goodwill). Thresholds by cost, not by habit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from policy.decision import Thresholds


class CostModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    review_cost: float = Field(3.0, ge=0, description="Per reviewed transaction.")
    chargeback_fee: float = Field(15.0, ge=0, description="Added to a missed fraud's amount.")
    false_block_fraction: float = Field(
        0.3, ge=0, le=10, description="Share of a blocked good payment's amount that is lost."
    )


def decision_costs(
    tiers: np.ndarray, y: np.ndarray, amounts: np.ndarray, costs: CostModel
) -> dict[str, float]:
    """Total cost of given tiers (0 LEGIT, 1 REVIEW, 2 BLOCK), split by kind."""
    fraud, tiers = np.asarray(y) == 1, np.asarray(tiers)
    missed = float(
        np.sum(amounts[fraud & (tiers == 0)]) + costs.chargeback_fee * np.sum(fraud & (tiers == 0))
    )
    reviews = float(costs.review_cost * np.sum(tiers == 1))
    blocked_good = float(costs.false_block_fraction * np.sum(amounts[~fraud & (tiers == 2)]))
    return {
        "missed_fraud": missed,
        "reviews": reviews,
        "blocked_good": blocked_good,
        "total": missed + reviews + blocked_good,
    }


def cost_grid(
    y: np.ndarray, scores: np.ndarray, amounts: np.ndarray, costs: CostModel, grid: np.ndarray
) -> np.ndarray:
    """cost[i, j] for review = grid[i], block = grid[j] (inf where block < review).

    Separable, so O(rows + grid^2): missed-fraud loss depends on the review threshold only,
    blocked-good loss on the block threshold only, reviews on the count between the two.
    """
    fraud = np.asarray(y) == 1
    loss = np.where(fraud, amounts + costs.chargeback_fee, 0.0)
    good_block = np.where(fraud, 0.0, costs.false_block_fraction * amounts)
    order = np.argsort(scores)
    s = scores[order]
    cum_loss = np.concatenate([[0.0], np.cumsum(loss[order])])
    cum_good = np.concatenate([[0.0], np.cumsum(good_block[order])])
    at_or_below = np.searchsorted(s, grid, side="right")  # rows with score <= t
    missed = cum_loss[at_or_below]  # score <= review: LEGIT
    blocked_good = cum_good[-1] - cum_good[at_or_below]  # score > block: BLOCK
    above = len(s) - at_or_below
    reviews = costs.review_cost * (above[:, None] - above[None, :])
    total = missed[:, None] + reviews + blocked_good[None, :]
    return np.where(grid[None, :] >= grid[:, None], total, np.inf)


def cost_optimal_thresholds(
    y: np.ndarray,
    scores: np.ndarray,
    amounts: np.ndarray,
    costs: CostModel = CostModel(),
    current: Thresholds = Thresholds(),
    grid: np.ndarray | None = None,
) -> dict[str, Any]:
    """The cheapest (review, block) on the grid, with its cost beside the current thresholds'."""
    grid = np.round(np.linspace(0.01, 0.99, 99), 4) if grid is None else grid
    y, scores, amounts = (np.asarray(a, np.float64) for a in (y, scores, amounts))
    table = cost_grid(y, scores, amounts, costs, grid)
    i, j = np.unravel_index(int(np.argmin(table)), table.shape)
    best = Thresholds(review=float(grid[i]), block=float(grid[j]))

    def total(t: Thresholds) -> dict[str, float]:
        tiers = (scores > t.review).astype(np.int8) + (scores > t.block)
        return decision_costs(tiers, y, amounts, costs)

    return {
        "review": best.review,
        "block": best.block,
        "cost_model": costs.model_dump(),
        "n_transactions": len(y),
        "cost": total(best),
        "cost_at_current": {"thresholds": current.model_dump(), **total(current)},
    }
