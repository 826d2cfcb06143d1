"""The `user_config` of the deployments that decide (Ingress, StreamConsumer): changes apply
in place, no restart."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from deployments.model.served import ServedModel
from policy.decision import Thresholds


class IngressConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Unset: the served model card's thresholds (recall-first, chosen on validation by
    # `fraud train`); set to pin them.
    thresholds: Thresholds | None = None
    # Use the cost-optimal thresholds `fraud train` wrote into the served model's card
    # instead (falls back to the above for a model without them).
    thresholds_from_model: bool = False


def thresholds_for(config: IngressConfig, served: ServedModel | None) -> Thresholds:
    """The served model's cost-optimal thresholds if asked for, else the configured ones,
    else the served card's, else the defaults (no model read yet)."""
    card = served.card if served is not None else None
    if config.thresholds_from_model and card is not None and card.cost_thresholds is not None:
        return card.cost_thresholds.thresholds
    if config.thresholds is not None:
        return config.thresholds
    return card.thresholds if card is not None else Thresholds()
