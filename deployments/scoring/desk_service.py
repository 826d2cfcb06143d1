"""What the analyst routes do, as plain async code over the desk and the scoring pipeline.

Rules and lists are validated here (a bad rule never reaches the desk), stored as a new
version in the desk, and picked up by every ingress replica within `REPORT_INTERVAL_S`. A review
resolution goes through the same feedback path as a chargeback, so terminal risk learns it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from actors.client.desk import DeskClient
from actors.errors import Conflict, NotFound, Stale
from actors.store.decisions import DecisionStore
from deployments.http.schemas import LabelIn
from deployments.scoring.pipeline import ScoringPipeline
from features.config import EngineConfig
from features.normals import Past, card_normals
from policy.case import assemble
from policy.preview import preview
from policy.rules import LIST_NAMES, Policy, Rule, list_keys

REPORT_INTERVAL_S = 0.5  # each ingress replica reports to the desk and checks the policy
CARD_HISTORY = 500  # a card's held decisions a case reads: its history and its normal
MAX_WRITE_TRIES = 20  # a policy write that keeps losing races to other editors gives up
Lists = dict[str, np.ndarray]


def _stale(current: int) -> Stale:
    return Stale(f"If-Match: the policy is at version {current}; read it and edit again", current)


class ReviewNotFound(NotFound):
    def __init__(self) -> None:  # the id is not repeated: it may be a card number
        super().__init__("transaction_id: no review for this id")


class ReviewConflict(Conflict):
    pass


class DeskService:
    def __init__(
        self,
        desk: DeskClient,
        pipeline: ScoringPipeline,
        record: DecisionStore | None = None,
        engine: EngineConfig | None = None,
    ) -> None:
        """`engine`: the service's engine settings, with which a card's normal is replayed."""
        self.desk, self.pipeline, self.record, self.engine = desk, pipeline, record, engine

    # -- decisions ----------------------------------------------------------------------------
    async def transaction(self, tx_id: str) -> dict[str, Any] | None:
        """A decision by id: the desk's recent view first, then the decision record (a
        dispute months later), with the label the desk holds for it. None if neither has it."""
        tx_id = self.pipeline.ids.redact(tx_id)
        found = await self.desk.transaction(tx_id)
        if found is not None or self.record is None:
            return found
        row = await asyncio.get_running_loop().run_in_executor(None, self.record.find, tx_id)
        if row is None:
            return None
        return {**row, "label": await self.desk.label_of(tx_id), "source": "decision_record"}

    async def case(self, tx_id: str) -> dict[str, Any] | None:
        """What an analyst decides a case on (`policy.case`): the decision, its review, the
        recent decisions of its card and terminal, each reason beside the card's normal."""
        found = await self.desk.case(self.pipeline.ids.redact(tx_id), CARD_HISTORY, 20)
        if found is None:
            return None
        history = [
            Past(int(r["time_ms"]), float(r["amount"]), str(r["terminal"]))
            for r in reversed(found["card_history"])  # oldest first
            if r["time_ms"] < found["transaction"]["time_ms"]
        ]
        loop = asyncio.get_running_loop()
        normals = await loop.run_in_executor(None, card_normals, history, self.engine)
        return assemble(found, normals)

    async def preview_rules(self, rules: Sequence[Rule]) -> dict[str, Any]:
        """What these rules would do, in place of the ones in force, to this replica's
        newest first answers (`policy.preview`); nothing is stored."""
        await self.refresh_policy()
        current = self.pipeline.policy
        proposed = Policy.build(current.version + 1, rules, current.lists)  # raises if invalid
        recent = self.pipeline.recent
        if recent is None:
            raise NotFound("preview: this replica keeps no recent decisions")
        rows = recent.rows()
        labels = await self.desk.labels_by_key(rows.tx_keys.tolist())
        return preview(current, proposed, rows, labels)

    # -- policy -------------------------------------------------------------------------------
    async def refresh_policy(self, version: int | None = None) -> int:
        """Load the desk's current policy if it is newer than the one in force here."""
        if version is None:
            version = await self.desk.policy_version()
        if version != self.pipeline.policy.version:
            current = await self.desk.current_policy()
            self.pipeline.policy = Policy.load(
                current["version"], current["rules"], current["lists"]
            )
        return int(version)

    async def policy(self) -> dict[str, Any]:
        await self.refresh_policy()
        return self.pipeline.policy.describe()

    async def _put(
        self,
        change: Callable[[dict[str, Any]], tuple[Sequence[Rule | dict[str, Any]], Lists]],
        comment: str,
        key_id: str | None,
        action: str,
        if_match: int | None,
    ) -> dict[str, Any]:
        """Read the current version, make the change on it, and write it back as based on
        that version. A write that another editor beat is made again on the newer version
        (so both edits stand), unless the caller named the version it read (`If-Match`):
        then it gets 412 with the current version, and nothing is stored."""
        for _ in range(MAX_WRITE_TRIES):
            current = await self.desk.current_policy()
            if if_match is not None and if_match != current["version"]:
                raise _stale(current["version"])
            rules, lists = change(current)
            checked = Policy.build(0, rules, lists)  # raises on anything invalid: nothing stored
            payload = [r.model_dump() for r in checked.all_rules]
            written = await self.desk.put_policy(
                payload, checked.lists, comment, key_id, action, based_on=current["version"]
            )
            if written.stored:
                await self.refresh_policy()
                return self.pipeline.policy.describe()
            if if_match is not None:
                raise _stale(written.version)
        raise Conflict("policy: edited by others too often meanwhile; send it again")

    async def put_rules(
        self,
        rules: Sequence[Rule],
        comment: str,
        key_id: str | None = None,
        if_match: int | None = None,
    ) -> dict[str, Any]:
        def change(current: dict[str, Any]) -> tuple[Sequence[Rule], Lists]:
            return rules, current["lists"]

        return await self._put(change, comment, key_id, "policy.rules", if_match)

    async def edit_list(
        self,
        name: str,
        add: Sequence[str],
        remove: Sequence[str],
        comment: str,
        key_id: str | None = None,
        if_match: int | None = None,
    ) -> dict[str, Any]:
        if name not in LIST_NAMES:
            raise KeyError(name)
        added, removed = list_keys(add, self.pipeline.ids), list_keys(remove, self.pipeline.ids)

        def change(current: dict[str, Any]) -> tuple[list[dict[str, Any]], Lists]:
            lists = dict(current["lists"])
            keys = np.union1d(lists.get(name, np.empty(0, np.int64)), added)
            lists[name] = np.setdiff1d(keys, removed)
            return current["rules"], lists

        return await self._put(change, comment, key_id, f"policy.list.{name}", if_match)

    async def rollback(
        self, version: int, comment: str, key_id: str | None = None, if_match: int | None = None
    ) -> dict[str, Any] | None:
        """A new version with the content of an old one (history is never rewritten)."""
        old = await self.desk.policy(version)
        if old is None:
            return None
        comment = comment or f"rollback to v{version}"

        def change(_: dict[str, Any]) -> tuple[list[dict[str, Any]], Lists]:
            return old["rules"], old["lists"]

        return await self._put(change, comment, key_id, "policy.rollback", if_match)

    # -- labels and reviews -------------------------------------------------------------------
    async def feedback(self, labels: Sequence[LabelIn], source: str = "feedback") -> list[str]:
        """Labels into terminal state, then into the desk's label log (for export)."""
        missing = await self.pipeline.feedback(labels)
        ids = [self.pipeline.ids.redact(lb.transaction_id) for lb in labels]
        await self.desk.label(ids, [lb.is_fraud for lb in labels], source)
        return missing

    async def resolve(
        self, tx_id: str, outcome: str, analyst: str, note: str, key_id: str | None = None
    ) -> dict[str, Any]:
        tx_id = self.pipeline.ids.redact(tx_id)
        current = await self._review(tx_id)
        if current["status"] == "open":  # into terminal state first: idempotent if we crash
            await self.pipeline.apply_labels(
                np.array([current["transaction_key"]], np.int64),
                [current["terminal"]],
                np.array([current["terminal_key"]], np.int64),
                np.array([outcome == "fraud"], np.int8),
            )
        result = await self.desk.resolve(tx_id, outcome, analyst, note, key_id)
        if result["status"] == "not_found":
            raise ReviewNotFound()
        if result["status"] == "conflict":
            raise ReviewConflict(
                f"transaction_id: this review was already resolved as {result['review']['status']}"
            )
        return {**result["review"], "changed": result["status"] == "ok"}

    async def _review(self, tx_id: str) -> dict[str, Any]:
        item = await self.desk.review(tx_id)
        if item is None:
            raise ReviewNotFound()
        return item
