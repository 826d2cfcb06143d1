"""The scoring pipeline without Ray: in-process shards, a fake or real model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from actors.client.local import LocalShardClient
from actors.events import TerminalEvents
from deployments.http.schemas import LabelIn, TransactionIn
from deployments.model.versions import Scored
from deployments.scoring.pipeline import ScoringPipeline
from features.ids import OFFLINE
from features.spec import FEATURE_NAMES
from policy.decision import Thresholds

REPO = Path(__file__).resolve().parents[2]
COL = {n: i for i, n in enumerate(FEATURE_NAMES)}


class FakeModel:
    """Scores = amount / 1000, capped at 1: decisions are predictable. Its "contributions"
    are the amount (/1000) and the 1-hour count (/10), so the reasons are known too."""

    version = "fake-1"

    async def score(self, x: np.ndarray) -> Scored:
        return Scored(np.minimum(x[:, COL["TX_AMOUNT"]] / 1000, 1.0), self.version)

    async def explain(self, x: np.ndarray, approx: bool = False) -> tuple[np.ndarray, str]:
        contribs = np.zeros_like(x)
        contribs[:, COL["TX_AMOUNT"]] = x[:, COL["TX_AMOUNT"]] / 1000
        contribs[:, COL["USER_NB_TX_1HOUR_WINDOW"]] = x[:, COL["USER_NB_TX_1HOUR_WINDOW"]] / 10
        return contribs, self.version


def tx(
    i: int,
    user: str = "u1",
    terminal: str = "t1",
    amount: float = 10.0,
    ts: str = "2018-06-01T10:00:00",
) -> TransactionIn:
    return TransactionIn(
        transaction_id=f"tx{i}", user_id=user, terminal_id=terminal, amount=amount, timestamp=ts
    )


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_decision_tiers_and_order() -> None:
    p = ScoringPipeline(LocalShardClient(3, 2), FakeModel(), Thresholds(review=0.5, block=0.9))
    amounts = [100.0, 600.0, 950.0, 500.0, 900.0]
    out = run(p.score([tx(i, user=f"u{i}", amount=a) for i, a in enumerate(amounts)]))
    assert [o.transaction_id for o in out] == [f"tx{i}" for i in range(5)]
    assert [o.decision for o in out] == ["LEGIT", "REVIEW", "BLOCK", "LEGIT", "REVIEW"]
    assert {o.model_version for o in out} == {"fake-1"}


def test_state_routes_to_one_shard_per_card() -> None:
    shards = LocalShardClient(4, 2)
    p = ScoringPipeline(shards, FakeModel(), Thresholds())
    for i in range(20):
        run(p.score([tx(i, user="card-7", ts=f"2018-06-01T10:{i:02d}:00")]))
    per_shard = [s.transactions for s in shards.users]
    assert sorted(per_shard) == [0, 0, 0, 20]
    assert per_shard.index(20) == OFFLINE.shard_of("card-7", 4)
    last = run(p.score([tx(99, user="card-7", ts="2018-06-01T10:30:00")], include_features=True))
    assert last[0].features["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 21


def test_feedback_reaches_terminal_risk_after_the_delay() -> None:
    p = ScoringPipeline(LocalShardClient(2, 2), FakeModel(), Thresholds())
    run(p.score([tx(1, user="a", terminal="T", ts="2018-06-01T10:00:00")]))
    missing = run(
        p.feedback(
            [
                LabelIn(transaction_id="tx1", terminal_id="T", is_fraud=True),
                LabelIn(transaction_id="nope", terminal_id="T", is_fraud=True),
            ]
        )
    )
    assert missing == ["nope"]
    later = run(p.score([tx(2, user="b", terminal="T", ts="2018-06-08T12:00:00")], True))[0]
    assert later.features["TERMINAL_ID_RISK_7DAY_WINDOW"] == 1.0


def test_one_row_is_grouped_as_the_general_path_groups_it() -> None:
    """`group_by_route` skips sorting for one row: the same shard, the same index array."""
    from features.groups import group_by_route

    keys = np.random.default_rng(3).integers(-(2**62), 2**62, 200, dtype=np.int64)
    for k in keys:
        one = group_by_route(np.array([k]), 3, 256)
        general = group_by_route(np.array([k, k]), 3, 256)  # both rows on one shard
        assert list(one) == list(general) and one[next(iter(one))].tolist() == [0]
        assert one[next(iter(one))].dtype == general[next(iter(general))].dtype


class Gated(LocalShardClient):
    """In-process shards whose card steps wait for a gate, and which note the order in which
    card steps and terminal reads and writes start."""

    def __init__(self) -> None:
        super().__init__(2, 2)
        self.started: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}

    async def user_step(self, shard, events):  # type: ignore[no-untyped-def,override]
        self.started.append("card")
        gate = self.gates.get(events.tx_ids[0])
        if gate is not None:
            await asyncio.wait_for(gate.wait(), 5)
        return await super().user_step(shard, events)

    async def terminal_step(self, shard, events):  # type: ignore[no-untyped-def,override]
        self.started.append("read" if events.kinds[0] == 2 else "terminal")
        return await super().terminal_step(shard, events)

    def start_terminal_step(self, shard, events):  # type: ignore[no-untyped-def,override]
        self.started.append("write")
        return super().start_terminal_step(shard, events)


def test_the_terminal_read_goes_out_beside_the_card_step() -> None:
    """One round trip: the card step answers only once the terminal read has started (it
    would wait forever if the read followed it), and the write follows the card's verdict."""
    shards = Gated()
    p = ScoringPipeline(shards, FakeModel(), Thresholds())

    async def go() -> None:
        gate = asyncio.Event()
        shards.gates[OFFLINE.keys_many(["tx1"])[0][0]] = gate
        answer = asyncio.ensure_future(p.score([tx(1)], True))
        for _ in range(1_000):  # bounded: a pipeline that reads after the card would not
            if "read" in shards.started:
                break
            await asyncio.sleep(0)
        assert sorted(shards.started) == ["card", "read"] and not answer.done()
        gate.set()
        out = (await answer)[0]
        assert sorted(shards.started[:2]) == ["card", "read"] and shards.started[2:] == ["write"]
        assert out.features["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1

    run(go())
    assert shards.terminals[0].transactions + shards.terminals[1].transactions == 1


def test_a_read_waits_for_an_earlier_write_its_windows_reach() -> None:
    """Batch A (day 0) is held at its card step while batch B (day 7.5, same terminal) is
    sent: B's windows reach day 0, so B waits for A's write and counts A, as offline."""
    shards = Gated()
    p = ScoringPipeline(shards, FakeModel(), Thresholds())

    async def go() -> None:
        gate = asyncio.Event()
        shards.gates[OFFLINE.keys_many(["tx1"])[0][0]] = gate
        a = asyncio.ensure_future(p.score([tx(1, user="a", ts="2018-06-01T00:00:00")]))
        await asyncio.sleep(0.01)
        b = asyncio.ensure_future(p.score([tx(2, user="b", ts="2018-06-08T12:00:00")], True))
        await asyncio.sleep(0.05)
        assert not b.done()  # waiting for A's write
        gate.set()
        await a
        later = (await b)[0]
        assert later.features["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 1

    run(go())


def test_a_batch_longer_than_the_delay_reads_its_own_writes() -> None:
    shards = Gated()
    p = ScoringPipeline(shards, FakeModel(), Thresholds())
    out = run(
        p.score(
            [tx(1, user="a", ts="2018-06-01T00:00:00"), tx(2, user="b", ts="2018-06-08T12:00:00")],
            True,
        )
    )
    assert out[1].features["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 1
    assert "read" not in shards.started and "terminal" in shards.started


def test_a_terminal_read_changes_nothing() -> None:
    """Reads are not journaled and leave state as it was; a retry reads its stored features."""
    shards = LocalShardClient(1, 1)
    p = ScoringPipeline(shards, FakeModel(), Thresholds())
    first = run(p.score([tx(1, ts="2018-06-01T00:00:00")], True))[0]
    terminal = shards.terminals[0]
    seq, held = terminal.seq, terminal.transactions
    key = OFFLINE.terminal_keys("t1")[0]
    tx_key = OFFLINE.keys_many(["tx1"])[1]
    kinds, times = np.full(1, 2, np.int8), np.array([1527811200000 + 10 * 86_400_000])
    answer = terminal.process(TerminalEvents(kinds, [key], times, tx_key, np.zeros(1, np.int8)))
    feats, applied = answer.features, answer.held
    assert applied.tolist() == [True] and terminal.seq == seq and terminal.transactions == held
    assert feats.shape == (1, 7)
    again = run(p.score([tx(1, ts="2018-06-01T00:00:00")], True))[0]
    assert again == first


class Lossy(LocalShardClient):
    """In-process shards whose terminal writes vanish while `lose` is set: the replica that
    sent them died before they arrived."""

    lose = True

    def start_terminal_step(self, shard, events):  # type: ignore[no-untyped-def,override]
        if self.lose:
            return asyncio.get_running_loop().create_future()  # never applied
        return super().start_terminal_step(shard, events)


def test_a_starting_replica_sends_again_the_writes_a_dead_one_lost() -> None:
    """Sent again past the terminal shards' dedup window (1 h here; six days of event time
    go by in a fast replay's two minutes), a write is still recorded once: the terminal's
    own ring holds its key."""
    txs = [tx(i, user=f"u{i % 3}", ts=f"2018-06-0{1 + i}T10:00:00") for i in range(6)]
    later = tx(99, user="z", ts="2018-06-13T12:00:00")  # its 30-day windows reach all six
    reference = ScoringPipeline(LocalShardClient(2, 2), FakeModel(), Thresholds())
    run(reference.score(txs))
    want = run(reference.score([later], True))[0].features

    shards = Lossy(2, 2, {"dedup": {"window_hours": 1}})
    dead = ScoringPipeline(shards, FakeModel(), Thresholds())
    run(dead.score(txs))  # answered; the writes never reached the terminal
    assert sum(t.transactions for t in shards.terminals) == 0
    shards.lose = False
    started = ScoringPipeline(shards, FakeModel(), Thresholds())
    assert run(started.resend_recent()) == 6
    assert sum(t.transactions for t in shards.terminals) == 6
    assert run(started.resend_recent()) == 6  # sent twice: applied once
    assert sum(t.transactions for t in shards.terminals) == 6
    assert run(started.score([later], True))[0].features == want


class Lingering(LocalShardClient):
    """In-process shards whose writes wait 50 ms for a read to carry them, as over sockets;
    notes the kinds of every terminal request."""

    def __init__(self) -> None:
        super().__init__(1, 1)
        self.write_linger_s = 0.05
        self.requests: list[list[int]] = []

    async def terminal_step(self, shard, events):  # type: ignore[no-untyped-def,override]
        self.requests.append(events.kinds.tolist())
        return await super().terminal_step(shard, events)

    def start_terminal_step(self, shard, events):  # type: ignore[no-untyped-def,override]
        self.requests.append(events.kinds.tolist())
        return super().start_terminal_step(shard, events)


def test_a_write_rides_with_the_next_read_or_goes_alone_after_the_linger() -> None:
    shards = Lingering()
    p = ScoringPipeline(shards, FakeModel(), Thresholds())

    async def go() -> None:
        await p.score([tx(1, user="a")])
        assert shards.requests == [[2]] and shards.terminals[0].transactions == 0  # queued
        second = (await p.score([tx(2, user="b")], True))[0]
        assert shards.requests == [[2], [0, 2]]  # tx1's write ahead of tx2's read
        assert shards.terminals[0].transactions == 1
        assert second.features["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 0  # a delay too young
        await asyncio.sleep(0.2)  # no read came: tx2's write went alone
        assert shards.requests == [[2], [0, 2], [0]] and shards.terminals[0].transactions == 2
        assert p.writes.pending == 0 and p.writes.carried == 1

    run(go())
