"""Always an answer in time: a shard that does not answer within the request's deadline is
answered without (degraded, by the fallback), and what it missed is applied in order once
it is back, so online = offline holds afterwards."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from actors.client.local import LocalShardClient
from actors.errors import Invalid
from deployments.http.deadline import deadline_for
from deployments.scoring.pipeline import ScoringPipeline
from policy.decision import Thresholds
from tests.code.test_pipeline import FakeModel, tx


class Stalled(LocalShardClient):
    """In-process shards whose card (or terminal) steps wait while `stalled` is set, as a
    shard on a silent host does."""

    def __init__(self, kind: str) -> None:
        super().__init__(1, 1)
        self.kind = kind
        self.open = asyncio.Event()
        self.card_calls = 0

    async def _gate(self, kind: str) -> None:
        if kind == self.kind:
            await self.open.wait()

    async def user_step(self, shard, events):  # type: ignore[no-untyped-def,override]
        self.card_calls += 1
        await self._gate("card")
        return await super().user_step(shard, events)

    async def terminal_step(self, shard, events):  # type: ignore[no-untyped-def,override]
        await self._gate("terminal")
        return await super().terminal_step(shard, events)


def _soon(ms: float = 30) -> float:
    return asyncio.get_running_loop().time() + ms / 1000


def _day(i: int, user: str = "u1", amount: float = 20.0):  # type: ignore[no-untyped-def]
    return tx(i, user=user, terminal=f"t{i % 2}", amount=amount, ts=f"2018-06-0{1 + i}T10:00:00")


def test_a_silent_card_shard_costs_the_deadline_and_loses_nothing() -> None:
    later = tx(9, user="u1", terminal="t0", amount=30.0, ts="2018-06-09T12:00:00")
    reference = ScoringPipeline(LocalShardClient(1, 1), FakeModel(), Thresholds())
    want = asyncio.run(reference.score([_day(i) for i in range(3)] + [later], True))

    shards = Stalled("card")
    p = ScoringPipeline(shards, FakeModel(), Thresholds())

    async def go() -> None:
        # Answered while the card shard is silent: without card state, marked degraded.
        first = await p.score([_day(0)], True, _soon())
        assert first[0].degraded == "card_state_late"
        # the card's features as its first transaction's (`first_card`), never missing values
        assert first[0].features["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1.0  # type: ignore[index]
        assert first[0].features["TX_AMOUNT"] == 20.0  # type: ignore[index]
        # Later steps for that shard queue behind the late one, in order, unsent.
        rest = [(await p.score([_day(i)], True, _soon()))[0] for i in (1, 2)]
        assert {a.degraded for a in rest} == {"card_state_late"}
        assert shards.users[0].transactions == 0 and p.late.pending == 3
        assert shards.card_calls == 1
        shards.open.set()  # the shard is back: all three applied, once, in order
        for _ in range(100):
            if not p.late.pending and not p.writes.pending:
                break
            await asyncio.sleep(0.01)
        assert shards.users[0].transactions == 3 and shards.terminals[0].transactions == 3
        assert shards.card_calls == 2  # the late step, then the two queued ones together
        again = await p.score([later], True, _soon(1000))
        assert again[0].degraded is None
        assert again[0].features == want[-1].features  # online = offline afterwards
        assert p.degraded == {"card_state_late": 3}

    asyncio.run(go())


def test_a_silent_terminal_shard_degrades_only_its_features() -> None:
    shards = Stalled("terminal")
    p = ScoringPipeline(shards, FakeModel(), Thresholds())

    async def go() -> None:
        answer = (await p.score([_day(0)], True, _soon()))[0]
        assert answer.degraded == "terminal_state_late"
        features = answer.features or {}
        assert features["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1.0  # card state was applied
        assert features["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 0.0  # as a terminal never seen
        shards.open.set()
        await p.writes.flush()  # the write follows once the terminal shard answers
        assert shards.terminals[0].transactions == 1

    asyncio.run(go())


@pytest.mark.parametrize("fallback", ["REVIEW", "model"])
def test_the_fallback_decides_a_degraded_answer(fallback: str) -> None:
    shards = Stalled("card")
    p = ScoringPipeline(shards, FakeModel(), Thresholds(), fallback=fallback)

    async def go() -> str:
        answer = (await p.score([_day(0, amount=20.0)], False, _soon()))[0]
        shards.open.set()
        return answer.decision

    # FakeModel scores amount / 1000: 20.0 is LEGIT on the model's own word.
    assert asyncio.run(go()) == ("REVIEW" if fallback == "REVIEW" else "LEGIT")


def test_no_deadline_waits_as_before() -> None:
    """The stream path passes none: it waits for state, whatever it takes."""
    shards = Stalled("card")
    p = ScoringPipeline(shards, FakeModel(), Thresholds())

    async def go() -> None:
        task = asyncio.ensure_future(p.score([_day(0)]))
        await asyncio.sleep(0.05)
        assert not task.done()
        shards.open.set()
        assert (await task)[0].degraded is None

    asyncio.run(go())


def test_a_client_may_ask_for_less_time_never_more() -> None:
    async def budgets() -> list[float]:
        now = asyncio.get_running_loop().time()
        return [round(deadline_for(v, 250) - now, 2) for v in (None, "40", "9999")]

    assert asyncio.run(budgets()) == [0.25, 0.04, 0.25]


def test_the_wait_for_state_leaves_the_reserve_for_the_rest_of_the_answer() -> None:
    async def waits() -> list[float]:
        now = asyncio.get_running_loop().time()
        return [round(deadline_for(v, 250, 40) - now, 3) for v in (None, "100", "60")]

    # 40 ms kept back; never more than half of a short budget
    assert asyncio.run(waits()) == [0.21, 0.06, 0.03]
    for bad in ("soon", "0", "-5", "nan", "inf"):
        with pytest.raises(Invalid, match="x-fraud-deadline-ms"):
            asyncio.run(_deadline(bad))


async def _deadline(value: str) -> float:
    return deadline_for(value, 250)


def test_late_steps_of_a_replica_that_dies_are_applied_by_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Replica A answers three transactions degraded while their card shard is silent, then
    dies with the steps still queued. Each was kept in the state store before its answer;
    replica B applies them, once and in order, with their terminal writes, and the next
    transaction equals offline."""
    from actors.client import late_steps as late_module
    from actors.client.late_steps import ORPHAN_AFTER_MS, LateSteps
    from actors.store.backends import MemoryStore

    later = tx(9, user="u1", terminal="t0", amount=30.0, ts="2018-06-09T12:00:00")
    reference = ScoringPipeline(LocalShardClient(1, 1), FakeModel(), Thresholds())
    want = asyncio.run(reference.score([_day(i) for i in range(3)] + [later], True))

    store = MemoryStore()
    shards = Stalled("card")
    a = ScoringPipeline(shards, FakeModel(), Thresholds(), late_steps=LateSteps(store))
    b = ScoringPipeline(shards, FakeModel(), Thresholds(), late_steps=LateSteps(store))

    async def go() -> None:
        for i in range(3):
            assert (await a.score([_day(i)], True, _soon()))[0].degraded == "card_state_late"
        assert sum(len(store.load(n).log) for n in store.names("late-")) == 3  # kept
        a.late.close()  # A dies: its queue and its call in flight with it
        await asyncio.sleep(0)
        shards.open.set()  # the shard is back
        assert await b.adopt_late() == 0  # too recent: A might still apply them
        now = time.time() + ORPHAN_AFTER_MS / 1000 + 1
        monkeypatch.setattr(late_module.time, "time", lambda: now)
        assert await b.adopt_late() == 3
        await b.writes.flush()
        assert await b.adopt_late() == 0  # dropped once applied
        assert shards.users[0].transactions == 3 and shards.terminals[0].transactions == 3
        again = await b.score([later], True)
        assert again[0].features == want[-1].features  # online = offline afterwards

    asyncio.run(go())


def test_state_that_is_late_is_scored_as_a_first_transaction_would_be() -> None:
    from features.engine import FeatureEngine, first_card, first_terminal, terminal_hashes
    from features.spec import CARD_COLUMNS, TERMINAL_COLUMNS

    times = np.array([1_528_000_000_000, 1_528_100_000_000], np.int64)
    amounts = np.array([12.5, 980.0])
    card = first_card(times, amounts, terminal_hashes(["tA", "tB"]))
    terminal = first_terminal(times, 7 * 86_400_000)
    for i, (t, a) in enumerate(zip(times, amounts, strict=True)):
        engine = FeatureEngine()  # a card and a terminal with no history
        x = engine.transact([f"new-{i}"], ["tA", "tB"][i : i + 1], t[None], a[None], t[None])
        assert card[i].tolist() == x[0, CARD_COLUMNS].tolist()
        assert terminal[i].tolist() == x[0, TERMINAL_COLUMNS].tolist()
