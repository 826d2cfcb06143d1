"""`fraud backtest`: what a rule set would have done on history, before it goes live.

History is replayed through the same feature engine and scored by the same ONNX model as the
service; the rules and lists are applied by the same `Policy` code. Reported side by side:
the model alone, and the model with the rules (flag rate, frauds caught, false alarms, cost),
plus each rule's own hits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field

from features.ids import OFFLINE
from features.offline import Progress, offline_features
from features.spec import FEATURE_NAMES
from models.onnx import OnnxModel
from policy.costs import CostModel, decision_costs
from policy.decision import Thresholds, tiers
from policy.rules import ListName, Policy, Rule, list_keys, rule_hits


class PolicyFile(BaseModel):
    """A rules file: the same rules the API takes, and lists of raw ids (kept locally)."""

    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(default_factory=list)
    lists: dict[ListName, list[str]] = Field(default_factory=dict)


def load_policy_file(path: Path) -> Policy:
    """Read and validate a rules file; pydantic's error names the bad field."""
    spec = PolicyFile.model_validate(yaml.safe_load(path.read_text()) or {})
    lists: dict[str, np.ndarray] = {
        n: list_keys(map(str, ids), OFFLINE) for n, ids in spec.lists.items()
    }
    return Policy.build(1, spec.rules, lists)


def _keys(column: pd.Series) -> np.ndarray:
    codes, uniques = pd.factorize(column.astype(str))
    return OFFLINE.keys_many([str(u) for u in uniques])[1][codes]


def summarise(
    final: np.ndarray, y: np.ndarray, amounts: np.ndarray, costs: CostModel
) -> dict[str, Any]:
    flagged, fraud = final > 0, y == 1
    return {
        "transactions": len(final),
        "flag_rate": float(flagged.mean()) if len(final) else 0.0,
        "reviews": int(np.sum(final == 1)),
        "blocks": int(np.sum(final == 2)),
        "frauds": int(fraud.sum()),
        "frauds_caught": int(np.sum(flagged & fraud)),
        "frauds_missed": int(np.sum(~flagged & fraud)),
        "false_alarms": int(np.sum(flagged & ~fraud)),
        "fraud_amount_caught": float(amounts[flagged & fraud].sum()),
        "cost": decision_costs(final, y, amounts, costs),
    }


def backtest(
    transactions: pd.DataFrame,
    model: OnnxModel,
    policy: Policy,
    thresholds: Thresholds,
    costs: CostModel = CostModel(),
    skip_days: int = 7,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Model alone vs model + rules over history (after `skip_days` of window warm-up)."""
    config = model.card.engine_config
    feats = offline_features(transactions, config, progress=progress)
    start = feats["timestamp"].min() + pd.Timedelta(days=skip_days)
    feats = feats[feats["timestamp"] >= start].reset_index(drop=True)
    x = feats[list(FEATURE_NAMES)].to_numpy(np.float64)
    scores = model.score(x)
    base = tiers(scores, thresholds)
    final, fired = policy.apply(
        base, x, scores, _keys(feats["user_id"]), _keys(feats["terminal_id"])
    )
    y = feats["is_fraud"].to_numpy().astype(np.int8)
    amounts = feats["TX_AMOUNT"].to_numpy()
    return {
        "window": [str(feats["timestamp"].min()), str(feats["timestamp"].max())],
        "model_version": model.version,
        "thresholds": thresholds.model_dump(),
        "cost_model": costs.model_dump(),
        "rules": [r.model_dump() for r in policy.all_rules],
        "model_only": summarise(base, y, amounts, costs),
        "with_rules": summarise(final, y, amounts, costs),
        "per_rule": rule_hits(fired, final, base, y),
    }
