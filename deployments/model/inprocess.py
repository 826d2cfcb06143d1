"""The model run inside the deciding replica, following what the ModelScorer serves.

A call to the ModelScorer deployment is a hop (~3 ms of wall time here, and serialisation
on both sides) for ~2 us of ONNX work per row. With `score_in_process` the Ingress and
StreamConsumer load the same model directory themselves and score locally; the ModelScorer
stays the authority (`fraud models promote/rollback/shadow` reconfigure it; its `served()`
answer names the directories it serves) and the replica loads those, off the event loop.
Until the first load, or if the directory cannot be read on this node, batches go to the
ModelScorer: a local copy is an optimisation, never a second source of truth.
"""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

import numpy as np

from actors.errors import Unavailable
from deployments.model.remote import RemoteModel
from deployments.model.served import ServedModel
from deployments.model.versions import (
    ExplainerLoader,
    Loader,
    ModelVersions,
    Scored,
    onnx_loader,
    resolve_model_dir,
)
from features.spec import FEATURE_NAMES

log = logging.getLogger(__name__)


class Wanted(NamedTuple):
    """The ModelScorer's directories and versions, as a replica last saw them."""

    model_dir: str
    shadow_model_dir: str | None
    version: str
    shadow_version: str | None


class InProcessModel:
    def __init__(
        self,
        remote: RemoteModel,
        loader: Loader | None = None,
        explainer_loader: ExplainerLoader | None = None,
    ) -> None:
        self.remote = remote
        self.versions = ModelVersions(loader or onnx_loader(1), explainer_loader)
        self.serving: Wanted | None = None  # what is loaded
        self.load_failures = 0
        self._failed: Wanted | None = None  # what did not load: not tried again

    @property
    def local(self) -> bool:
        return self.serving is not None

    async def follow(self, served: ServedModel) -> None:
        """Load the directories the ModelScorer serves, if they (or their versions) changed."""
        wanted = Wanted(
            served.model_dir, served.shadow_model_dir, served.version, served.shadow_version
        )
        if wanted in (self.serving, self._failed):
            return
        model_dir, shadow_dir = served.model_dir, served.shadow_model_dir
        try:  # ONNX sessions and the TreeSHAP tables take ~0.5 s: not on the event loop
            await asyncio.to_thread(self._load, model_dir, shadow_dir)
        except Exception as e:  # e.g. the directory is not on this node: keep the remote
            self.load_failures += 1
            self.serving, self._failed = None, wanted
            log.warning("in-process model unavailable (%s): using the ModelScorer", e)
            return
        if self.versions.model.version != served.version:
            log.warning("in-process model version differs from the ModelScorer's: remote")
            self.serving, self._failed = None, wanted
            return
        self.serving = wanted
        log.info("scoring in process with %s", resolve_model_dir(model_dir))

    def _load(self, model_dir: str, shadow_dir: str | None) -> None:
        self.versions.load(model_dir, shadow_dir)
        self.versions.explain(np.zeros((1, len(FEATURE_NAMES))))  # the explainer, loaded now

    async def score(self, x: np.ndarray) -> Scored:
        if self.serving is None:
            return await self.remote.score(x)
        try:
            return self.versions.score_many([x])[0]
        except Exception as e:  # as from the ModelScorer: a 503, never a silent LEGIT
            raise Unavailable("model_failed", retry_after_s=5) from e

    async def explain(self, x: np.ndarray, approx: bool = False) -> tuple[np.ndarray, str]:
        if self.serving is None:
            return await self.remote.explain(x, approx)
        return self.versions.explain(x, approx)
