"""The model deployment behind the pipeline's `ModelBackend` interface, with failover.

A replica that dies mid-request is retried on another (scoring is a pure function of the
features, so a retry is safe) until `retry_for_s`; after that, or when the model itself
raises, the request fails with 503 and a reason: never a silent LEGIT without a score.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.exceptions import RayTaskError
from ray.serve.handle import DeploymentHandle

from actors.client.retry import retry_while_gone
from actors.errors import Unavailable
from deployments.model.served import ServedModel
from deployments.model.versions import Scored


class RemoteModel:
    """`ModelBackend` over the ModelScorer deployment: a call that finds no replica (gone,
    restarting, or refusing under backpressure) fails over for up to `retry_for_s`, then
    503; a call whose model code raised is not retried (it would raise again)."""

    def __init__(self, handle: DeploymentHandle[Any], retry_for_s: float = 10.0) -> None:
        self.handle = handle
        self.retry_for_s = retry_for_s
        self.failovers = 0

    async def score(self, x: np.ndarray) -> Scored:
        scored: Scored = await self._call("score", x)
        return scored

    async def explain(self, x: np.ndarray, approx: bool = False) -> tuple[np.ndarray, str]:
        answer: tuple[np.ndarray, str] = await self._call("explain", x, approx)
        return answer

    async def served(self) -> ServedModel:
        """What the ModelScorer serves (its card holds the thresholds that decide)."""
        answer: ServedModel = await self._call("served")
        return answer

    async def _call(self, method: str, *args: Any) -> Any:
        async def attempt() -> Any:
            return await getattr(self.handle, method).remote(*args)

        def before_retry() -> None:
            self.failovers += 1

        def give_up(_: BaseException) -> BaseException:
            return Unavailable("model_unavailable", retry_after_s=2)

        try:
            return await retry_while_gone(
                attempt, _replica_away, self.retry_for_s, before_retry, give_up, max_wait_s=0.5
            )
        except RayTaskError as e:  # the model code raised: retrying gives the same
            raise Unavailable("model_failed", retry_after_s=5) from e


def _replica_away(e: BaseException) -> bool:
    return isinstance(e, Exception) and not isinstance(e, RayTaskError)
