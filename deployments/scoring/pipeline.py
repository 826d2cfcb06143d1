"""Score transactions: route by stable hash to shards, assemble features, score, decide.

Plain async code over two injected backends (shards and model), so it runs the same against
Ray actors and a Serve model deployment or against in-process fakes in unit tests.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from actors.actor.decision_log import DecidedBatch
from actors.actor.dedup import Seen
from actors.actor.shards import RECENT_S
from actors.client.late_steps import Held, LateSteps
from actors.client.protocol import ShardClient
from actors.client.recorder import DecisionRecorder
from actors.errors import InvalidFields, TransactionConflict
from actors.events import (
    CardAnswer,
    CardEvents,
    LinkAnswer,
    LinkEvents,
    TerminalAnswer,
    TerminalEvents,
    TerminalWrite,
)
from deployments.http.schemas import LabelIn, TransactionIn
from deployments.model.versions import Scored
from deployments.scoring import stages
from deployments.scoring.late_cards import CardBacklog
from deployments.scoring.terminal_writes import TerminalWrites
from features.currency import CurrencyConfig
from features.engine import (
    assemble,
    first_card,
    first_terminal,
    stateless_features,
)
from features.gateway import Gateway
from features.groups import group_by_route
from features.ids import OFFLINE, IdHasher, identity
from features.spec import CARD_WIDTH, FEATURE_NAMES, LINK_WIDTH, TERMINAL_WIDTH
from policy.decision import DECISIONS, TIER_NAMES, Thresholds, tiers
from policy.drift import DriftMonitor
from policy.preview import RecentDecisions
from policy.reasons import top_reasons
from policy.rules import Policy

log = logging.getLogger(__name__)


class ModelBackend(Protocol):
    async def score(self, x: np.ndarray) -> Scored: ...

    async def explain(self, x: np.ndarray, approx: bool = False) -> tuple[np.ndarray, str]: ...


class DecisionSink(Protocol):
    """Where decided batches go (the desk: review queue, decision log, live numbers).
    `wait`: the batch holds a REVIEW or BLOCK, so it must be durable before the answer."""

    async def record(self, batch: DecidedBatch, wait: bool) -> None: ...


CARD_LATE, TERMINAL_LATE = 1, 2  # `Featurised.degraded` bits
DEGRADED_REASONS = {
    CARD_LATE: "card_state_late",
    TERMINAL_LATE: "terminal_state_late",
    CARD_LATE | TERMINAL_LATE: "card_and_terminal_state_late",
}


def _retrieved(call: asyncio.Future[Any]) -> None:
    """A call nobody awaits any more: its failure is expected, not an error to report."""
    if not call.cancelled():
        call.exception()


# (final tiers, scores, transactions per card shard, retries answered from dedup): metrics.
BatchObserver = Callable[[np.ndarray, np.ndarray, dict[int, int], int], None]


@dataclass
class Featurised:
    """A request's features and what the pipeline learnt on the way (per row)."""

    x: np.ndarray
    conflict: np.ndarray  # an id reused with another body: nothing was applied
    duplicate: np.ndarray  # a retry of an applied transaction: answered as before
    user_routes: np.ndarray  # 64-bit keys of the card ids (lists match on these)
    terminal_routes: np.ndarray
    user_digests: list[str]
    terminal_digests: list[str]
    tx_keys64: np.ndarray  # what a label for the transaction is matched on
    times: np.ndarray
    amounts: np.ndarray
    shard_sizes: dict[int, int]
    degraded: np.ndarray  # int8 per row: CARD_LATE | TERMINAL_LATE, what it was answered without


@dataclass(frozen=True)
class Backfilled:
    """What a backfill request did: transactions applied to state, ones applied before (a
    resumed backfill sends its last batch again) and ids refused as another body."""

    applied: int
    duplicates: int
    conflicts: list[str]


@dataclass(slots=True)
class Answer:
    """One decision as the pipeline returns it; `deployments.http.schemas.ScoreOut` documents its
    JSON. A slotted class, not a pydantic model: building a model per transaction cost more
    than scoring it (15 us vs ~2 us per row, measured with cProfile on the stream path)."""

    transaction_id: str
    score: float
    decision: str
    model_version: str
    reasons: list[dict[str, Any]] | None = None
    rules: list[str] | None = None
    features: dict[str, float | None] | None = None  # None: missing (a field not sent)
    degraded: str | None = None  # answered without some state: why (`DEGRADED_REASONS`)

    def as_dict(self) -> dict[str, Any]:
        """The JSON body: the optional fields that are None are left out."""
        out = {
            "transaction_id": self.transaction_id,
            "score": self.score,
            "decision": self.decision,
            "model_version": self.model_version,
        }
        if self.reasons is not None:
            out["reasons"] = self.reasons
        if self.rules is not None:
            out["rules"] = self.rules
        if self.features is not None:
            out["features"] = self.features
        if self.degraded is not None:
            out["degraded"] = True
            out["degraded_reason"] = self.degraded
        return out


@dataclass
class ShadowStats:
    """Live vs shadow model on the same traffic, under the same thresholds and rules."""

    version: str | None = None
    compared: int = 0
    agreed: int = 0
    abs_diff_sum: float = 0.0


def body_text(t: TransactionIn, time_ms: int) -> str:
    """What makes two requests with one transaction_id the same request (`time_ms`: the
    transaction's, computed once by the caller); hashed by `body_hashes`."""
    return f"{t.user_id}|{t.terminal_id}|{t.amount!r}|{time_ms}|{t.currency}"


def gateway(txs: Sequence[TransactionIn]) -> Gateway:
    """The gateway's optional fields of these transactions, as the engine takes them."""
    return Gateway(
        [t.channel for t in txs],
        [t.bin_country for t in txs],
        [t.merchant_country for t in txs],
        [t.device_id for t in txs],
        [None if t.ip is None else str(t.ip) for t in txs],
        [t.email for t in txs],
    )


def body_hashes(ids: IdHasher, txs: Sequence[TransactionIn], times_ms: list[int]) -> np.ndarray:
    """The keyed hash of each transaction's `body_text` (it holds the card id)."""
    return ids.hashes64(map(body_text, txs, times_ms))


class ScoringPipeline:
    def __init__(
        self,
        shards: ShardClient,
        model: ModelBackend,
        thresholds: Thresholds,
        sink: DecisionSink | None = None,
        policy: Policy | None = None,
        on_batch: BatchObserver | None = None,
        approx_reasons: bool = False,
        ids: IdHasher | None = None,
        fallback: str = "model",
        recorder: DecisionRecorder | None = None,
        late_steps: LateSteps | None = None,
        currency: CurrencyConfig | None = None,
        drift: DriftMonitor | None = None,
        recent: RecentDecisions | None = None,
    ) -> None:
        """`ids`: the service's keyed hasher (`ScoringService` always passes it; tests and
        benchmarks may use the public `OFFLINE` one). `recorder`: the decision record; every
        answer waits for its batch's append to the replica's record journal. `late_steps`:
        where a degraded answer's card step is kept until applied (else memory only).
        `currency`: the engine's table; amounts are in its reporting currency from here on."""
        self.ids = ids or OFFLINE
        self.currency = currency or CurrencyConfig()
        self.drift = drift  # scored rows are buffered for it; the report tick bins them
        self.recent = recent  # the newest first answers, for a rule change's preview
        self.shards, self.model, self.thresholds = shards, model, thresholds
        self.sink, self.recorder = sink, recorder
        self.on_batch = on_batch
        self.policy = policy or Policy()
        self.shadow = ShadowStats()
        self.explain_failures = 0
        self.approx_reasons = approx_reasons  # `reasons: approx`: Saabas, not exact TreeSHAP
        self.writes = TerminalWrites(shards)
        self.late = CardBacklog(shards)
        self.late_steps = late_steps
        self.fallback = fallback  # decides degraded rows: "model", or a fixed tier's name
        self.degraded: Counter[str] = Counter()  # answers given without some state, by reason

    def check_amounts(self, txs: Sequence[TransactionIn], prefix: str = "") -> None:
        """Refuses (422, naming each field) amounts their currency cannot take: no rate,
        more decimal places than ISO 4217 gives it, or above its limit. Nothing is applied."""
        problem = self.currency.problem
        found = [
            (f"{prefix}{i}.{p.field}" if prefix else p.field, p.message)
            for i, t in enumerate(txs)
            if (p := problem(t.currency, t.amount)) is not None
        ]
        if found:
            raise InvalidFields(found)

    def _keys(self, ids: Sequence[str], terminals: bool = False) -> tuple[list[str], np.ndarray]:
        """One hash per id: the digests that stand for them in state, and their 64-bit keys
        (terminal ids through a bounded cache, `IdHasher.terminal_keys`)."""
        if not terminals:
            return self.ids.keys_many(ids)
        pairs = [self.ids.terminal_keys(v) for v in ids]
        return [p[0] for p in pairs], np.fromiter((p[1] for p in pairs), np.int64, len(pairs))

    async def features(
        self, txs: Sequence[TransactionIn], deadline: float | None = None
    ) -> Featurised:
        """Apply these transactions to card and terminal state (once each).

        `deadline` (the event loop's clock): a shard that has not answered by then is not
        waited for. Its rows' features from that shard are unknown (NaN, which the model
        takes as missing) and marked `degraded`; a late card step is applied, in order, once
        its shard answers (`late_cards`), and a late read is dropped (reads change nothing).

        One round trip: each card shard's step (dedup, card features, its journal), each
        terminal shard's read and each link step (devices, IPs, emails, card-and-country:
        recorded once per transaction, `_link_steps`) go out together; the terminal write
        of every transaction the card shards did not refuse as a conflict follows off the
        answer path
        (`terminal_writes`). A batch that spans more than the label delay reads its own
        writes, so it takes two: card steps, then terminal steps.
        """
        n = len(txs)
        tx_keys, label_keys = self._keys([t.transaction_id for t in txs])
        user_keys, user_routes = self._keys([t.user_id for t in txs])
        terminal_keys, terminal_routes = self._keys([t.terminal_id for t in txs], True)
        times = np.fromiter((t.time_ms for t in txs), np.int64, n)
        amounts = self.currency.to_reporting(
            np.fromiter((t.amount for t in txs), np.float64, n), (t.currency for t in txs)
        )
        bodies = body_hashes(self.ids, txs, times.tolist())
        hashes = identity(terminal_routes)
        fields = gateway(txs)
        link_rows, link_kinds, link_texts = fields.links([t.user_id for t in txs])
        first, last = int(times.min()), int(times.max())
        delay = self.shards.label_delay_ms
        ticket, sent = self.writes.open(first), False
        stages.mark("keys")
        try:
            await self.writes.settled(ticket, last - delay)
            user_groups = group_by_route(
                user_routes, self.shards.n_user_shards, self.shards.key_groups
            )
            events = CardEvents(
                tx_keys, bodies, user_keys, times, amounts, hashes, terminal_routes,
                terminal_keys, label_keys,
            )  # fmt: skip
            parts = [events if len(idx) == n else events.rows(idx) for idx in user_groups.values()]
            queued = [self.late.behind(s) for s in user_groups]  # in order, behind the late
            card_calls = [
                self.late.queue(s, part)
                if behind
                else asyncio.ensure_future(self.shards.user_step(s, part))
                for s, part, behind in zip(user_groups, parts, queued, strict=True)
            ]
            one_trip = last - first < delay
            term_groups = (
                group_by_route(
                    terminal_routes, self.shards.n_terminal_shards, self.shards.key_groups
                )
                if one_trip
                else {}
            )
            read_calls, carried = [], []
            for s, idx in term_groups.items():
                call, skip = self._read(
                    s, [terminal_keys[i] for i in idx], times[idx], label_keys[idx]
                )
                read_calls.append(call)
                carried.append(skip)
            link_groups, link_calls = self._link_steps(
                link_rows, link_kinds, link_texts, times, label_keys, user_routes
            )
            calls: list[asyncio.Future[Any]] = [*card_calls, *read_calls, *link_calls]
            if deadline is None:
                await asyncio.wait(calls)
            elif (wait := deadline - asyncio.get_running_loop().time()) > 0:
                await asyncio.wait(calls, timeout=wait)
            degraded = np.zeros(n, np.int8)
            user = np.zeros((n, CARD_WIDTH), np.float64)
            status = np.full(n, Seen.CONFLICT, np.int8)  # a failed card shard applied nothing
            groups = zip(user_groups.items(), parts, card_calls, queued, strict=True)
            for (s, idx), part, card, behind in groups:
                if not card.done():  # answered without it; applied once its shard answers
                    degraded[idx] |= CARD_LATE
                    user[idx] = first_card(times[idx], amounts[idx], hashes[idx])
                    status[idx] = Seen.NEW
                    applied_at = card if behind else self.late.queue(s, part, card)
                    held = None
                    if self.late_steps is not None:  # durable before the answer goes out
                        held = await self.late_steps.hold(s, user_routes[idx], part)
                    self._write_when_applied(applied_at, part, held)
                elif card.exception() is None:
                    user[idx], status[idx] = card.result().features, card.result().status
            applied = np.flatnonzero((status != Seen.CONFLICT) & (degraded == 0))
            write = events.write if len(applied) == n else events.write.rows(applied)
            terminal = np.zeros((n, TERMINAL_WIDTH), np.float64)
            if one_trip:
                self.writes.send(ticket, write)
                sent = True
                for idx, skip, read in zip(term_groups.values(), carried, read_calls, strict=True):
                    if not read.done():  # reads change nothing: answered without it
                        read.add_done_callback(_retrieved)
                        degraded[idx] |= TERMINAL_LATE
                        terminal[idx] = first_terminal(times[idx], delay)
                    elif read.exception() is None:
                        terminal[idx] = read.result().features[skip:]
            links = np.full((len(link_rows), LINK_WIDTH), np.nan)  # missing until answered
            for idx, step in zip(link_groups.values(), link_calls, strict=True):
                if not step.done():  # a write in flight: applied when its shard answers
                    step.add_done_callback(_retrieved)
                    degraded[link_rows[idx]] |= TERMINAL_LATE
                elif step.exception() is None:
                    links[idx] = step.result().features
            failed = next((c.exception() for c in calls if c.done() and c.exception()), None)
            if failed is not None:
                raise failed
            if not one_trip:
                terminal[applied] = await self._terminal_steps(write)
        finally:
            if not sent:
                self.writes.close(ticket)
        x = assemble(
            stateless_features(times, amounts, fields.flags()), user, terminal,
            (link_rows, link_kinds, links),
        )  # fmt: skip
        return Featurised(
            x, status == Seen.CONFLICT, status == Seen.DUPLICATE, user_routes, terminal_routes,
            user_keys, terminal_keys, label_keys, times, amounts,
            {s: len(idx) for s, idx in user_groups.items()}, degraded,
        )  # fmt: skip

    def _link_steps(
        self,
        rows: np.ndarray,
        kinds: np.ndarray,
        texts: list[str],
        times: np.ndarray,
        tx_keys: np.ndarray,
        user_routes: np.ndarray,
    ) -> tuple[dict[int, np.ndarray], list[asyncio.Future[LinkAnswer]]]:
        """Each terminal shard's link step for these link events (`Gateway.links`): sent
        with the card steps, in the same round trip. A link records a transaction once
        (by its key), so a retry's step changes nothing."""
        if not len(rows):
            return {}, []
        digests, routes = self._keys(texts)
        cards = identity(user_routes[rows])
        events = LinkEvents(digests, kinds, times[rows], cards, tx_keys[rows])
        groups = group_by_route(routes, self.shards.n_terminal_shards, self.shards.key_groups)
        calls: list[asyncio.Future[LinkAnswer]] = [
            asyncio.ensure_future(self.shards.link_step(s, events.rows(idx)))
            for s, idx in groups.items()
        ]
        return groups, calls

    def _write_when_applied(
        self, applied: asyncio.Future[CardAnswer], events: CardEvents, held: Held | None
    ) -> None:
        """The terminal writes of a late card step, once its shard applied it; a ticket holds
        the watermark meanwhile (`TerminalWrites.settled`). Then the kept step is dropped."""
        ticket = self.writes.open(int(events.times.min()))

        def send(done: asyncio.Future[CardAnswer]) -> None:
            if done.cancelled():
                self.writes.close(ticket)
                return
            rows = np.flatnonzero(done.result().status != Seen.CONFLICT)
            self.writes.send(ticket, events.write.rows(rows))
            if held is not None and self.late_steps is not None:
                asyncio.get_running_loop().create_task(self.late_steps.release(held))

        applied.add_done_callback(send)

    def _read(
        self, shard: int, keys: list[str], times: np.ndarray, tx_keys: np.ndarray
    ) -> tuple[asyncio.Future[TerminalAnswer], int]:
        """A terminal shard's read of these rows, carrying the writes queued for it ahead
        of them (`TerminalWrites.take`); returns the call and how many rows it carried."""
        reads = TerminalEvents.reads(keys, times, tx_keys)
        taken = self.writes.take(shard)
        if taken is None:
            return asyncio.ensure_future(self.shards.terminal_step(shard, reads)), 0
        tickets, write = taken
        events = TerminalEvents.writes(write).then(reads)
        call = asyncio.ensure_future(self.shards.terminal_step(shard, events))
        self.writes.carried_by(tickets, write, call)
        return call, len(write)

    async def _terminal_steps(self, write: TerminalWrite) -> np.ndarray:
        """Record these transactions in their terminals and return their features, waiting
        (the path of a batch that reads its own writes)."""
        groups = group_by_route(write.routes, self.shards.n_terminal_shards, self.shards.key_groups)
        results = await asyncio.gather(*(
            self.shards.terminal_step(s, TerminalEvents.writes(write.rows(idx)))
            for s, idx in groups.items()
        ))  # fmt: skip
        out = np.zeros((len(write), TERMINAL_WIDTH), np.float64)
        for idx, answer in zip(groups.values(), results, strict=True):
            out[idx] = answer.features
        return out

    async def score_items(
        self,
        txs: Sequence[TransactionIn],
        include_features: bool = False,
        deadline: float | None = None,
    ) -> list[Answer | None]:
        """Answers in input order; None for a conflicting transaction.

        Model score -> thresholds -> rules and lists -> reasons for what is flagged -> the
        decision log (awaited when anything is flagged, so a REVIEW is never answered
        before it is in the durable queue). `deadline`: as for `features`; a row answered
        without some state is decided by `fallback` (the model on what it has, or a fixed
        tier), then the rules and lists as any other, and says so (`Answer.degraded`).
        """
        f = await self.features(txs, deadline)
        stages.mark("state")
        if f.conflict.all():
            return [None] * len(txs)
        scored = await self.model.score(f.x)
        stages.mark("model")
        policy, thresholds = self.policy, self.thresholds  # one version for the whole batch
        tier = tiers(scored.scores, thresholds)
        degraded = f.degraded.tolist() if f.degraded.any() else None
        if degraded is not None:
            if self.fallback != "model":
                tier[f.degraded > 0] = TIER_NAMES.index(self.fallback)
            self.degraded.update(DEGRADED_REASONS[d] for d in degraded if d)
        if self.drift is not None or self.recent is not None:
            self._keep_first_answers(f, scored, tier)
        final, fired = policy.apply(tier, f.x, scored.scores, f.user_routes, f.terminal_routes)
        flagged = np.flatnonzero((final > 0) & ~f.conflict)
        reasons = await self._reasons(f.x, flagged)
        if scored.shadow_scores is not None:
            self._compare_shadow(f, scored, final, thresholds, policy)
        decisions = DECISIONS[final]
        stages.mark("decide")
        if self.on_batch is not None:
            ok = ~f.conflict
            self.on_batch(final[ok], scored.scores[ok], f.shard_sizes, int(f.duplicate.sum()))
        if self.sink is not None or self.recorder is not None:
            flagged_any = len(flagged) > 0
            batch = self._decided(txs, f, scored, final, fired, reasons, policy.version, degraded)
            writes = []  # each one store append (at most), in parallel: the answer waits
            if self.recorder is not None:
                writes.append(self.recorder.record(batch, thresholds.review, thresholds.block))
            if self.sink is not None:
                writes.append(self.sink.record(batch, flagged_any))
            await asyncio.gather(*writes)
            stages.mark("record")
        scores, names = scored.scores.tolist(), decisions.tolist()
        return [
            None
            if f.conflict[i]
            else Answer(
                t.transaction_id,
                scores[i],
                names[i],
                scored.version,
                reasons.get(i),
                (fired[i] or None) if fired else None,
                {
                    n: None if v != v else v
                    for n, v in zip(FEATURE_NAMES, f.x[i].tolist(), strict=True)
                }
                if include_features
                else None,
                DEGRADED_REASONS[degraded[i]] if degraded and degraded[i] else None,
            )
            for i, t in enumerate(txs)
        ]

    async def adopt_late(self) -> int:
        """Apply the kept late steps of replicas that are gone (`LateSteps.orphans`), routed
        by the layout in force, then send their terminal writes and drop them; returns how
        many transactions. A shard still away leaves the rest for the next call."""
        if self.late_steps is None:
            return 0
        done = 0
        for name, steps in await self.late_steps.orphans():
            for seq, routes, events in steps:
                groups = group_by_route(routes, self.shards.n_user_shards, self.shards.key_groups)
                answers = await asyncio.gather(
                    *(self.shards.user_step(s, events.rows(idx)) for s, idx in groups.items())
                )
                for idx, answer in zip(groups.values(), answers, strict=True):
                    rows = idx[answer.status != Seen.CONFLICT]
                    ticket = self.writes.open(int(events.times[idx].min()))
                    self.writes.send(ticket, events.write.rows(rows))
                await self.late_steps.release((name, seq))
                done += len(events)
        self.late_steps.adopted += done
        return done

    async def resend_recent(self, seconds: float = RECENT_S) -> int:
        """Send again the terminal writes of every transaction the card shards applied in
        the last `seconds`: a replica that starts does this, since one that died may have
        answered transactions whose writes never reached their terminals (the terminal
        shards skip what they hold). Returns how many were sent."""
        writes = await asyncio.gather(
            *(self.shards.recent_writes(s, seconds) for s in range(self.shards.n_user_shards))
        )
        sent = 0
        for write in writes:
            if len(write):
                self.writes.send(self.writes.open(int(write.times.min())), write)
                sent += len(write)
        return sent

    async def score_applied(self, txs: Sequence[TransactionIn]) -> list[Answer | None]:
        """`score_items`, returning once every write of these transactions is applied (a
        stream acknowledges its entries after this, so a crash cannot lose a write)."""
        out = await self.score_items(txs)
        await self.writes.flush()
        return out

    async def _reasons(self, x: np.ndarray, rows: np.ndarray) -> dict[int, list[dict[str, Any]]]:
        """Top contributions for flagged rows only; a failure costs the reasons, not the answer."""
        if not len(rows):
            return {}
        try:
            contribs, _ = await self.model.explain(x[rows], self.approx_reasons)
        except Exception as e:  # the decision stands; the reasons are missing
            self.explain_failures += 1
            log.warning("reasons unavailable: %s", type(e).__name__)
            return {}
        return dict(zip(rows.tolist(), top_reasons(contribs, x[rows]), strict=True))

    def _compare_shadow(
        self, f: Featurised, scored: Scored, final: np.ndarray, th: Thresholds, policy: Policy
    ) -> None:
        assert scored.shadow_scores is not None
        shadow_final, _ = policy.apply(
            tiers(scored.shadow_scores, th), f.x, scored.shadow_scores, f.user_routes,
            f.terminal_routes,
        )  # fmt: skip
        ok = ~f.conflict & ~f.duplicate
        if self.shadow.version != scored.shadow_version:
            self.shadow = ShadowStats(scored.shadow_version)
        self.shadow.compared += int(ok.sum())
        self.shadow.agreed += int(np.sum(shadow_final[ok] == final[ok]))
        diff = np.abs(scored.shadow_scores[ok] - scored.scores[ok])
        self.shadow.abs_diff_sum += float(diff.sum())

    def _keep_first_answers(self, f: Featurised, scored: Scored, tier: np.ndarray) -> None:
        """First answers with all their state, buffered for drift (what it compares) and for
        a rule change's preview (`policy.preview`)."""
        fresh = ~(f.conflict | f.duplicate) & (f.degraded == 0)
        if not fresh.any():
            return
        every = bool(fresh.all())
        x, scores = (f.x, scored.scores) if every else (f.x[fresh], scored.scores[fresh])
        if self.drift is not None:
            self.drift.add(x, scores, scored.version)
        if self.recent is not None:
            rows = (f.user_routes, f.terminal_routes, f.tx_keys64, tier)
            users, terminals, keys, kept = rows if every else tuple(r[fresh] for r in rows)
            self.recent.add(x, scores, kept, users, terminals, keys)

    def _decided(
        self,
        txs: Sequence[TransactionIn],
        f: Featurised,
        scored: Scored,
        final: np.ndarray,
        fired: list[list[str]],
        reasons: dict[int, list[dict[str, Any]]],
        policy_version: int,
        degraded: list[int] | None,
    ) -> DecidedBatch:
        keep = np.flatnonzero(~f.conflict)
        every = len(keep) == len(txs)  # the usual case: the lists go as they are

        def kept(values: list[str]) -> list[str]:
            return values if every else [values[i] for i in keep]

        return DecidedBatch(
            ids=self.ids.redact_many(kept([t.transaction_id for t in txs])),
            time_ms=f.times[keep],
            amount=f.amounts[keep],
            tier=final[keep],
            score=np.asarray(scored.scores)[keep],
            version=scored.version,
            policy_version=policy_version,
            user=kept(f.user_digests),
            terminal=kept(f.terminal_digests),
            terminal_key=f.terminal_routes[keep],
            tx_key=f.tx_keys64[keep],
            duplicate=f.duplicate[keep],
            reasons={j: reasons[i] for j, i in enumerate(keep.tolist()) if i in reasons},
            rules={j: fired[i] for j, i in enumerate(keep.tolist()) if fired and fired[i]},
            degraded={
                j: DEGRADED_REASONS[degraded[i]]
                for j, i in enumerate(keep.tolist())
                if degraded and degraded[i]
            },
        )

    async def score(
        self,
        txs: Sequence[TransactionIn],
        include_features: bool = False,
        deadline: float | None = None,
    ) -> list[Answer]:
        """Answers in input order; `TransactionConflict` (after applying the rest) on
        conflicts."""
        out = await self.score_items(txs, include_features, deadline)
        conflicts = [t.transaction_id for t, o in zip(txs, out, strict=True) if o is None]
        if conflicts:
            raise TransactionConflict(conflicts)
        return out  # type: ignore[return-value]

    async def backfill(self, txs: Sequence[TransactionIn]) -> Backfilled:
        """Apply history to card and terminal state through the same engine, deciding
        nothing: no model, no decision, no record, no review. Returns once every state
        change is applied (the terminal writes too), so a client may count the batch done."""
        f = await self.features(txs)
        await self.writes.flush()
        conflicts = [t.transaction_id for t, c in zip(txs, f.conflict, strict=True) if c]
        duplicates = int(f.duplicate.sum())
        return Backfilled(len(txs) - len(conflicts) - duplicates, duplicates, conflicts)

    async def feedback(self, labels: Sequence[LabelIn]) -> list[str]:
        """Apply labels to terminal state; returns ids of transactions no longer held."""
        terminal_digests, terminal_routes = self._keys([lb.terminal_id for lb in labels], True)
        tx_keys = self._keys([lb.transaction_id for lb in labels])[1]
        values = np.fromiter((int(lb.is_fraud) for lb in labels), np.int8, len(labels))
        found = await self.apply_labels(tx_keys, terminal_digests, terminal_routes, values)
        return [lb.transaction_id for lb, ok in zip(labels, found, strict=True) if not ok]

    async def apply_labels(
        self,
        tx_keys: np.ndarray,
        terminal_digests: Sequence[str],
        terminal_routes: np.ndarray,
        values: np.ndarray,
    ) -> np.ndarray:
        """Labels by hashed ids (what the desk keeps); whether each transaction was held
        (every transaction answered before is: its terminal write is waited for)."""
        await self.writes.flush()
        groups = group_by_route(
            np.asarray(terminal_routes, np.int64), self.shards.n_terminal_shards,
            self.shards.key_groups,
        )  # fmt: skip
        tx_keys, values = np.asarray(tx_keys, np.int64), np.asarray(values, np.int8)
        calls = [
            self.shards.terminal_step(
                s,
                TerminalEvents.marks([terminal_digests[i] for i in idx], tx_keys[idx], values[idx]),
            )
            for s, idx in groups.items()
        ]
        results = await asyncio.gather(*calls)
        found = np.zeros(len(values), bool)
        for idx, answer in zip(groups.values(), results, strict=True):
            found[idx] = answer.held
        return found
