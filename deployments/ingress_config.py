"""The `user_config` of the deployments that decide (Ingress, StreamConsumer): changes apply
in place, no restart."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from policy.decision import Thresholds


class IngressConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    thresholds: Thresholds = Thresholds()
    # Use the cost-optimal thresholds `fraud train` wrote into the served model's card
    # (falls back to `thresholds` for a model without them).
    thresholds_from_model: bool = False


def thresholds_for(config: IngressConfig, model_card: dict[str, Any]) -> Thresholds:
    """The configured thresholds, or the served model's cost-optimal ones if asked for."""
    cost = (model_card.get("card") or {}).get("cost_thresholds")
    if config.thresholds_from_model and cost:
        return Thresholds(review=cost["review"], block=cost["block"])
    return config.thresholds
