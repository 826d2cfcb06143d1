"""What the ModelScorer tells every deciding replica it serves: the contract between the
Serve deployment and the plain code that follows it (no Serve in this module)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from models.card import ModelCard


class ServedModel(BaseModel):
    """What the ModelScorer serves (its `served()` answer, read by every deciding replica):
    the live model's version and card, the shadow's version, and the directories a replica
    loads to score in process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    card: ModelCard
    shadow_version: str | None = None
    model_dir: str
    shadow_model_dir: str | None = None
