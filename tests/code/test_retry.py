"""The one retry policy (`actors.client.retry.retry_while_gone`): what is retried, for how long."""

from __future__ import annotations

import asyncio
import time

import pytest

from actors.client.retry import retry_while_gone


class GaveUp(Exception):
    pass


def run(fails: int, exc: type[Exception], budget_s: float) -> tuple[object, int, int]:
    calls = retries = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        if calls <= fails:
            raise exc("away")
        return "answer"

    def before_retry() -> None:
        nonlocal retries
        retries += 1

    async def main() -> object:
        return await retry_while_gone(
            attempt, lambda e: isinstance(e, ConnectionError), budget_s, before_retry,
            lambda e: GaveUp(str(e)), max_wait_s=0.1,
        )  # fmt: skip

    return asyncio.run(main()), calls, retries


def test_a_gone_failure_is_retried_until_it_answers() -> None:
    assert run(0, ConnectionError, 5.0) == ("answer", 1, 0)
    assert run(3, ConnectionError, 5.0) == ("answer", 4, 3)  # a hook before every new try


def test_other_failures_pass_through_at_once() -> None:
    with pytest.raises(ValueError):
        run(1, ValueError, 5.0)


def test_the_budget_bounds_the_retries() -> None:
    started = time.monotonic()
    with pytest.raises(GaveUp, match="away"):
        run(10_000, ConnectionError, 0.5)
    assert time.monotonic() - started < 2.0
    with pytest.raises(GaveUp):  # no budget: one try, then give up
        run(1, ConnectionError, 0.0)
