"""ModelScorer: replicated ONNX Runtime sessions; concurrent requests share one `run`."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict
from ray import serve

from deployments.model.served import ServedModel
from deployments.model.versions import Loader, ModelVersions, Scored, onnx_loader


class ScorerConfig(BaseModel):
    """ModelScorer's `user_config`; `fraud models promote/rollback/shadow` edit it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_dir: str
    shadow_model_dir: str | None = None  # scores the same traffic; decisions ignore it
    previous_model_dir: str | None = None  # what `fraud models rollback` returns to


@serve.deployment(name="ModelScorer", ray_actor_options={"num_cpus": 0})
class ModelScorer:
    def __init__(self, loader: Loader | None = None, threads: int = 1) -> None:
        # One intra-op thread, no spinning: two cores are shared with the ingress and shards.
        self.versions = ModelVersions(loader or onnx_loader(threads))
        self.config: ScorerConfig | None = None

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Hot swap: a new `model_dir` (or `shadow_model_dir`) loads in place, no restart."""
        config = ScorerConfig(**user_config)
        self.versions.load(config.model_dir, config.shadow_model_dir)
        self.config = config

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0005)
    async def score(self, batches: list[np.ndarray]) -> list[Scored]:
        return self.versions.score_many(batches)

    def explain(self, x: np.ndarray, approx: bool = False) -> tuple[np.ndarray, str]:
        return self.versions.explain(x, approx)

    def served(self) -> ServedModel:
        shadow = self.versions.shadow
        assert self.config is not None  # Serve calls reconfigure before any request
        return ServedModel(
            version=self.versions.model.version,
            card=self.versions.model.card,
            shadow_version=shadow.version if shadow is not None else None,
            model_dir=self.config.model_dir,
            shadow_model_dir=self.config.shadow_model_dir,
        )
