"""Score transactions: route by stable hash to shards, assemble features, score, decide.

Plain async code over two injected backends (shards and model), so it runs the same against
Ray actors and a Serve model deployment or against in-process fakes in unit tests.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from actors.dedup import Seen
from deployments.errors import ConflictError
from deployments.schemas import LabelIn, ScoreOut, TransactionIn
from features.decision import Thresholds, decide
from features.engine import LABEL, TX, assemble, stateless_features, terminal_hashes
from features.ids import id_digest, shard_of, stable_hash64
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


def group_by_shard(keys: Sequence[str], n_shards: int) -> dict[int, np.ndarray]:
    """Row indices per shard, each in input order (so per-key order is kept)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[shard_of(key, n_shards)].append(i)
    return {s: np.asarray(idx, dtype=np.int64) for s, idx in groups.items()}


def body_hash(t: TransactionIn) -> int:
    """What makes two requests with one transaction_id the same request."""
    return stable_hash64(f"{t.user_id}|{t.terminal_id}|{t.amount!r}|{t.time_ms}|{t.currency}")


class ScoringPipeline:
    def __init__(self, shards: ShardBackend, model: ModelBackend, thresholds: Thresholds) -> None:
        self.shards, self.model, self.thresholds = shards, model, thresholds

    async def features(self, txs: Sequence[TransactionIn]) -> np.ndarray:
        """Apply these transactions to card and terminal state (once each); their features.

        Card shards go first: they own deduplication, so a reused id with another body
        (a conflict) never reaches terminal state. Raises `ConflictError` after applying the
        rest of the request.
        """
        n = len(txs)
        user_ids = [t.user_id for t in txs]
        terminal_ids = [t.terminal_id for t in txs]
        times = np.fromiter((t.time_ms for t in txs), np.int64, n)
        amounts = np.fromiter((t.amount for t in txs), np.float64, n)
        tx_keys = [id_digest(t.transaction_id) for t in txs]
        label_keys = np.fromiter((stable_hash64(t.transaction_id) for t in txs), np.int64, n)
        bodies = np.fromiter((body_hash(t) for t in txs), np.int64, n)
        user_keys = [id_digest(u) for u in user_ids]
        terminal_keys = [id_digest(k) for k in terminal_ids]
        hashes = terminal_hashes(terminal_ids)

        user_groups = group_by_shard(user_ids, self.shards.n_user_shards)
        user_results = await asyncio.gather(
            *(
                self.shards.user_step(
                    s,
                    [tx_keys[i] for i in idx],
                    bodies[idx],
                    [user_keys[i] for i in idx],
                    times[idx],
                    amounts[idx],
                    hashes[idx],
                )
                for s, idx in user_groups.items()
            )
        )
        user = np.empty((n, 11), np.float64)
        status = np.empty(n, np.int8)
        for idx, (feats, st) in zip(user_groups.values(), user_results, strict=True):
            user[idx], status[idx] = feats, st
        ok = np.flatnonzero(status != Seen.CONFLICT)

        term_groups = group_by_shard([terminal_ids[i] for i in ok], self.shards.n_terminal_shards)
        term_groups = {s: ok[idx] for s, idx in term_groups.items()}
        term_results = await asyncio.gather(
            *(
                self.shards.terminal_step(
                    s,
                    np.full(len(idx), TX, np.int8),
                    [terminal_keys[i] for i in idx],
                    times[idx],
                    label_keys[idx],
                    np.zeros(len(idx), np.int8),
                )
                for s, idx in term_groups.items()
            )
        )
        terminal = np.zeros((n, 6), np.float64)
        for idx, (feats, _) in zip(term_groups.values(), term_results, strict=True):
            terminal[idx] = feats
        if len(ok) < n:
            raise ConflictError(
                [txs[i].transaction_id for i in np.flatnonzero(status == Seen.CONFLICT)]
            )
        return assemble(stateless_features(times, amounts), user, terminal)

    async def score(
        self, txs: Sequence[TransactionIn], include_features: bool = False
    ) -> list[ScoreOut]:
        """Decisions for transactions in input order."""
        x = await self.features(txs)
        scores, version = await self.model.score(x)
        decisions = decide(scores, self.thresholds)
        return [
            ScoreOut(
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

    async def feedback(self, labels: Sequence[LabelIn]) -> list[str]:
        """Apply labels to terminal state; returns ids of transactions no longer held."""
        terminal_ids = [lb.terminal_id for lb in labels]
        terminal_keys = [id_digest(k) for k in terminal_ids]
        keys = np.fromiter(
            (stable_hash64(lb.transaction_id) for lb in labels), np.int64, len(labels)
        )
        values = np.fromiter((int(lb.is_fraud) for lb in labels), np.int8, len(labels))
        groups = group_by_shard(terminal_ids, self.shards.n_terminal_shards)
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
