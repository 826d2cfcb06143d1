"""The Ingress deployment's `user_config` (changes apply in place, no restart)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from features.decision import Thresholds


class IngressConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    thresholds: Thresholds = Thresholds()
    # Use the cost-optimal thresholds `fraud train` wrote into the served model's card
    # (falls back to `thresholds` for a model without them).
    thresholds_from_model: bool = False
