"""One retry policy for calls to actors that may be restarting.

tenacity runs the loop (exponential back-off from 50 ms, a wall-clock budget); the caller
says which failures mean "gone, try again" and what to do before each new try. Shard and
desk calls (`actors.ray_shards`) and model calls (`deployments.model.remote`) use it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

T = TypeVar("T")


async def retry_while_gone(
    attempt: Callable[[], Awaitable[T]],
    gone: Callable[[BaseException], bool],
    budget_s: float,
    before_retry: Callable[[], None],
    give_up: Callable[[BaseException], BaseException],
    max_wait_s: float = 1.0,
) -> T:
    """Run `attempt` until it returns; a failure for which `gone` is true calls
    `before_retry` and tries again, for up to `budget_s` seconds, then raises
    `give_up(last failure)`. Other failures pass through at once."""

    def hook(_: RetryCallState) -> None:
        before_retry()

    try:
        async for trial in AsyncRetrying(
            retry=retry_if_exception(gone),
            stop=stop_after_delay(budget_s),
            wait=wait_exponential(multiplier=0.05, min=0.05, max=max_wait_s),
            before_sleep=hook,
        ):
            with trial:
                return await attempt()
    except RetryError as e:
        last = e.last_attempt.exception()
        assert last is not None
        raise give_up(last) from last
    raise AssertionError("unreachable: tenacity either returns or raises")
