"""ModelScorer: replicated ONNX Runtime sessions; concurrent requests share one `run`."""

from __future__ import annotations

from typing import Any

import numpy as np
from ray import serve

from deployments.model_holder import Loader, ModelHolder, onnx_loader


@serve.deployment(name="ModelScorer", ray_actor_options={"num_cpus": 0})
class ModelScorer:
    def __init__(self, loader: Loader | None = None, threads: int = 1) -> None:
        # One intra-op thread, no spinning: two cores are shared with the ingress and shards.
        self.holder = ModelHolder(loader or onnx_loader(threads))

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Hot swap: `user_config.model_dir` changes load a model in place (no restart)."""
        self.holder.load(user_config["model_dir"])

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0005)
    async def score(self, batches: list[np.ndarray]) -> list[tuple[np.ndarray, str]]:
        return self.holder.score_many(batches)

    def card(self) -> dict[str, Any]:
        return {"version": self.holder.model.version, "card": self.holder.model.card}
