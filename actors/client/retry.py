"""One retry policy for calls to actors that may be restarting.

tenacity runs the loop (exponential back-off from 50 ms, a wall-clock budget); the caller
says which failures mean "gone, try again" and what to do before each new try. Shard and
desk calls (`actors.client.remote`) and model calls (`deployments.model.remote`) use it.
"""

from __future__ import annotations

import asyncio
import time
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
    `give_up(last failure)`. Other failures pass through at once.

    The first try runs outside tenacity: the loop's set-up costs ~17 us a call, paid on
    every shard call otherwise, and nearly every call succeeds at once."""
    started = time.monotonic()
    try:
        return await attempt()
    except Exception as e:
        if not gone(e):
            raise
        first: BaseException = e
    if time.monotonic() - started >= budget_s:
        raise give_up(first) from first
    before_retry()
    await asyncio.sleep(0.05)
    left = max(0.0, budget_s - (time.monotonic() - started))

    def hook(_: RetryCallState) -> None:
        before_retry()

    try:
        async for trial in AsyncRetrying(
            retry=retry_if_exception(gone),
            stop=stop_after_delay(left),
            wait=wait_exponential(multiplier=0.1, min=0.1, max=max_wait_s),
            before_sleep=hook,
        ):
            with trial:
                return await attempt()
    except RetryError as e:
        last = e.last_attempt.exception()
        assert last is not None
        raise give_up(last) from last
    raise AssertionError("unreachable: tenacity either returns or raises")
