"""The model deployment behind the pipeline's `ModelBackend` interface, with failover.

A replica that dies mid-request is retried on another (scoring is a pure function of the
features, so a retry is safe) until `retry_for_s`; after that, or when the model itself
raises, the request fails with 503 and a reason: never a silent LEGIT without a score.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ray.exceptions import RayTaskError
from ray.serve.handle import DeploymentHandle

from deployments.errors import ServiceUnavailable
from deployments.model_holder import Scored


class HandleModel:
    def __init__(self, handle: DeploymentHandle, retry_for_s: float = 10.0) -> None:
        self.handle = handle
        self.retry_for_s = retry_for_s
        self.failovers = 0

    async def score(self, x: Any) -> Scored:
        return await self._call("score", x)

    async def explain(self, x: Any, approx: bool = False) -> tuple[Any, str]:
        return await self._call("explain", x, approx)

    async def _call(self, method: str, *args: Any) -> Any:
        deadline = time.monotonic() + self.retry_for_s
        delay = 0.05
        while True:
            try:
                return await getattr(self.handle, method).remote(*args)
            except RayTaskError as e:  # the model code raised: retrying gives the same
                raise ServiceUnavailable("model_failed", retry_after_s=5) from e
            except Exception as e:  # replica gone, restarting, or refusing (backpressure)
                if time.monotonic() > deadline:
                    raise ServiceUnavailable("model_unavailable", retry_after_s=2) from e
                self.failovers += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
