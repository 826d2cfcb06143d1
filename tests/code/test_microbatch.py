"""Group commit for concurrent single requests (`deployments.scoring.microbatch`)."""

from __future__ import annotations

import asyncio

from deployments.scoring.microbatch import MicroBatcher


def run_(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_micro_batcher_groups_requests_and_keeps_each_answer() -> None:
    calls: list[int] = []

    async def run(items, deadline):  # type: ignore[no-untyped-def]
        calls.append(len(items))
        if "boom" in items:
            raise RuntimeError("down")
        return [f"answer-{x}" for x in items]

    async def scenario() -> tuple[list[list[str]], BaseException | None]:
        b = MicroBatcher(run, max_wait_s=0.01, max_transactions=100)
        got = await asyncio.gather(*(b.submit([f"r{i}a", f"r{i}b"]) for i in range(10)))
        err = None
        try:
            await asyncio.gather(b.submit(["ok"]), b.submit(["boom"]))
        except RuntimeError as e:
            err = e
        return got, err

    got, err = run_(scenario())
    assert got == [[f"answer-r{i}a", f"answer-r{i}b"] for i in range(10)]
    # The first request finds the pipeline idle and goes at once; the nine that arrive while
    # it is in flight go together in one call.
    assert calls[:2] == [2, 18]
    assert isinstance(err, RuntimeError)


def test_micro_batcher_holds_newcomers_while_a_group_is_out() -> None:
    """Group commit: with one group in flight, requests that arrive meanwhile go together
    when it returns (not on the wait timer); past `max_wait_s` they go anyway."""
    calls: list[list[str]] = []

    async def slow(items, deadline):  # type: ignore[no-untyped-def]
        calls.append(list(items))
        await asyncio.sleep(0.05)
        return list(items)

    async def arrivals(b: MicroBatcher[str, str], n: int) -> list[list[str]]:
        tasks = [asyncio.create_task(b.submit(["first"]))]
        for i in range(n):
            await asyncio.sleep(0.005)
            tasks.append(asyncio.create_task(b.submit([f"r{i}"])))
        return await asyncio.gather(*tasks)

    got = run_(arrivals(MicroBatcher(slow, max_wait_s=0.2, max_in_flight=1), 5))
    assert got == [["first"]] + [[f"r{i}"] for i in range(5)]
    assert calls == [["first"], [f"r{i}" for i in range(5)]]

    calls.clear()  # a short wait bound lets a second group out while the first is away
    run_(arrivals(MicroBatcher(slow, max_wait_s=0.012, max_in_flight=1), 5))
    assert len(calls) >= 3 and calls[0] == ["first"]
    assert [x for c in calls for x in c] == ["first"] + [f"r{i}" for i in range(5)]
