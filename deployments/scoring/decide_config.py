"""The `user_config` of the deployments that decide (Ingress, StreamConsumer): changes apply
in place, no restart."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from deployments.model.served import ServedModel
from policy.decision import Thresholds


class IngressConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    thresholds: Thresholds = Thresholds()
    # Use the cost-optimal thresholds `fraud train` wrote into the served model's card
    # (falls back to `thresholds` for a model without them).
    thresholds_from_model: bool = False


def thresholds_for(config: IngressConfig, served: ServedModel | None) -> Thresholds:
    """The configured thresholds, or the served model's cost-optimal ones if asked for."""
    cost = served.card.cost_thresholds if served is not None else None
    if config.thresholds_from_model and cost is not None:
        return cost.thresholds
    return config.thresholds
