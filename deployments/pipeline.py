"""Score transactions: route by stable hash to shards, assemble features, score, decide.

Plain async code over two injected backends (shards and model), so it runs the same against
Ray actors and a Serve model deployment or against in-process fakes in unit tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from actors.dedup import Seen
from deployments.errors import ConflictError
from deployments.schemas import LabelIn, ScoreOut, TransactionIn
from features.decision import Thresholds, decide
from features.engine import LABEL, TX, assemble, stateless_features
from features.ids import id_keys, stable_hash64, terminal_identity
from features.names import FEATURE_NAMES


class ShardBackend(Protocol):
    n_user_shards: int
    n_terminal_shards: int

    async def user_step(
        self,
        shard: int,
        user_ids: Sequence[str],
        times: np.ndarray,
        amounts: np.ndarray,
        terminal_hashes: np.ndarray,
    ) -> np.ndarray: ...

    async def terminal_step(
        self,
        shard: int,
        kinds: np.ndarray,
        terminal_ids: Sequence[str],
        times: np.ndarray,
        keys: np.ndarray,
        labels: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]: ...


class ModelBackend(Protocol):
    async def score(self, x: np.ndarray) -> tuple[np.ndarray, str]: ...


def _keys(ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """One hash per id: the digests that stand for them in state, and their 64-bit keys."""
    pairs = [id_keys(v) for v in ids]
    return [p[0] for p in pairs], np.fromiter((p[1] for p in pairs), np.int64, len(pairs))


def group_by_route(routes: np.ndarray, n_shards: int) -> dict[int, np.ndarray]:
    """Row indices per shard (`features.ids.shard_of` on 64-bit keys), each in input order."""
    shard = (routes & np.int64(0x7FFF_FFFF_FFFF_FFFF)) % n_shards
    order = np.argsort(shard, kind="stable")
    bounds = np.flatnonzero(np.diff(shard[order])) + 1
    return {int(shard[g[0]]): g for g in np.split(order, bounds) if len(g)}


def group_by_shard(keys: Sequence[str], n_shards: int) -> dict[int, np.ndarray]:
    """Row indices per shard of raw ids, each in input order (so per-key order is kept)."""
    return group_by_route(_keys(keys)[1], n_shards)


def body_hash(t: TransactionIn) -> int:
    """What makes two requests with one transaction_id the same request."""
    return stable_hash64(f"{t.user_id}|{t.terminal_id}|{t.amount!r}|{t.time_ms}|{t.currency}")


class ScoringPipeline:
    def __init__(self, shards: ShardBackend, model: ModelBackend, thresholds: Thresholds) -> None:
        self.shards, self.model, self.thresholds = shards, model, thresholds

    async def features(self, txs: Sequence[TransactionIn]) -> tuple[np.ndarray, np.ndarray]:
        """Apply these transactions to card and terminal state (once each).

        Returns their features and a mask of conflicts (an id reused with another body),
        which change nothing. Card shards go first: they own deduplication, so a conflicting
        copy never reaches terminal state.
        """
        n = len(txs)
        tx_keys, label_keys = _keys([t.transaction_id for t in txs])
        user_keys, user_routes = _keys([t.user_id for t in txs])
        terminal_keys, terminal_routes = _keys([t.terminal_id for t in txs])
        times = np.fromiter((t.time_ms for t in txs), np.int64, n)
        amounts = np.fromiter((t.amount for t in txs), np.float64, n)
        bodies = np.fromiter((body_hash(t) for t in txs), np.int64, n)
        hashes = terminal_identity(terminal_routes)

        user_groups = group_by_route(user_routes, self.shards.n_user_shards)
        user_results = await asyncio.gather(*(
            self.shards.user_step(
                s, [tx_keys[i] for i in idx], bodies[idx], [user_keys[i] for i in idx],
                times[idx], amounts[idx], hashes[idx],
            )
            for s, idx in user_groups.items()
        ))  # fmt: skip
        user = np.zeros((n, 11), np.float64)
        status = np.empty(n, np.int8)
        for idx, (feats, st) in zip(user_groups.values(), user_results, strict=True):
            user[idx], status[idx] = feats, st
        conflict = status == Seen.CONFLICT
        ok = np.flatnonzero(~conflict)

        term_groups = group_by_route(terminal_routes[ok], self.shards.n_terminal_shards)
        term_groups = {s: ok[idx] for s, idx in term_groups.items()}
        term_results = await asyncio.gather(*(
            self.shards.terminal_step(
                s, np.full(len(idx), TX, np.int8), [terminal_keys[i] for i in idx], times[idx],
                label_keys[idx], np.zeros(len(idx), np.int8),
            )
            for s, idx in term_groups.items()
        ))  # fmt: skip
        terminal = np.zeros((n, 6), np.float64)
        for idx, (feats, _) in zip(term_groups.values(), term_results, strict=True):
            terminal[idx] = feats
        return assemble(stateless_features(times, amounts), user, terminal), conflict

    async def score_items(
        self, txs: Sequence[TransactionIn], include_features: bool = False
    ) -> list[ScoreOut | None]:
        """Answers in input order; None for a conflicting transaction."""
        x, conflict = await self.features(txs)
        if conflict.all():
            return [None] * len(txs)
        scores, version = await self.model.score(x)
        decisions = decide(scores, self.thresholds)
        build = ScoreOut.model_construct  # fields are ours and already typed: skip validation
        return [
            None
            if conflict[i]
            else build(
                transaction_id=t.transaction_id,
                score=float(scores[i]),
                decision=str(decisions[i]),
                model_version=version,
                features=dict(zip(FEATURE_NAMES, x[i].tolist(), strict=True))
                if include_features
                else None,
            )
            for i, t in enumerate(txs)
        ]

    async def score(
        self, txs: Sequence[TransactionIn], include_features: bool = False
    ) -> list[ScoreOut]:
        """Answers in input order; `ConflictError` (after applying the rest) on conflicts."""
        out = await self.score_items(txs, include_features)
        conflicts = [t.transaction_id for t, o in zip(txs, out, strict=True) if o is None]
        if conflicts:
            raise ConflictError(conflicts)
        return out  # type: ignore[return-value]

    async def feedback(self, labels: Sequence[LabelIn]) -> list[str]:
        """Apply labels to terminal state; returns ids of transactions no longer held."""
        terminal_keys, terminal_routes = _keys([lb.terminal_id for lb in labels])
        keys = _keys([lb.transaction_id for lb in labels])[1]
        values = np.fromiter((int(lb.is_fraud) for lb in labels), np.int8, len(labels))
        groups = group_by_route(terminal_routes, self.shards.n_terminal_shards)
        calls = [
            self.shards.terminal_step(
                s,
                np.full(len(idx), LABEL, np.int8),
                [terminal_keys[i] for i in idx],
                np.zeros(len(idx), np.int64),
                keys[idx],
                values[idx],
            )
            for s, idx in groups.items()
        ]
        results = await asyncio.gather(*calls)
        missing: list[str] = []
        for idx, (_, found) in zip(groups.values(), results, strict=True):
            missing.extend(
                labels[i].transaction_id for i, ok in zip(idx, found, strict=True) if not ok
            )
        return missing
