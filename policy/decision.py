"""Score -> decision tiers: > block is BLOCK, > review is REVIEW, else LEGIT."""

from __future__ import annotations

from enum import Enum

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class Decision(str, Enum):
    BLOCK = "BLOCK"
    REVIEW = "REVIEW"
    LEGIT = "LEGIT"


class Thresholds(BaseModel):
    """Decision thresholds; both strict (a score equal to a threshold stays below it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    review: float = Field(0.5, ge=0.0, le=1.0)
    block: float = Field(0.9, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.review > self.block:
            raise ValueError(f"review threshold {self.review} must not exceed block {self.block}")
        return self


LEGIT, REVIEW, BLOCK = 0, 1, 2  # tiers: a larger tier is a stricter decision
TIER_NAMES: tuple[str, ...] = (Decision.LEGIT.value, Decision.REVIEW.value, Decision.BLOCK.value)
DECISIONS = np.array(TIER_NAMES)  # tier -> decision name, for whole arrays


def tiers(scores: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    """Tier per score: 0 LEGIT, 1 REVIEW, 2 BLOCK."""
    scores = np.asarray(scores)
    return (scores > thresholds.review).astype(np.int8) + (scores > thresholds.block)


def decide(scores: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    """Decision strings for an array of scores."""
    names: np.ndarray = DECISIONS[tiers(scores, thresholds)]
    return names
