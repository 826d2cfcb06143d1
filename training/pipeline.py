"""`fraud train`: features -> time blocks -> class weight on validation -> fit -> export."""

from __future__ import annotations

import datetime as dt
import hashlib
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.config import EngineConfig
from features.offline import offline_features
from features.spec import FEATURE_NAMES
from features.transactions import SCENARIOS, read_transactions
from models.card import ModelCard, ModelDir
from policy.costs import CostModel, cost_grid, cost_optimal_thresholds
from policy.decision import Thresholds
from policy.expressions import parse
from policy.recall import RecallTarget, recall_first_thresholds
from training import booster as bst
from training.behaviour import BehaviourError, behaviour_checks, summary
from training.export import check_parity, to_onnx
from training.metrics import evaluate_scores
from training.plots import cost_plot, threshold_plot
from training.splits import time_blocks

Engine = Literal["ray", "xgboost"]
Say = Callable[[str], None]


@dataclass(frozen=True)
class TrainOptions:
    engine: Engine = "ray"
    workers: int = 2
    rounds: int = bst.DEFAULT_ROUNDS
    delay_days: int = 7
    valid_days: int = 7
    test_days: int = 7
    train_days: int | None = None
    warmup_days: int = 7
    target: RecallTarget = field(default_factory=RecallTarget)
    class_weights: tuple[float, ...] = (1.0, 3.0, 10.0)
    selection_rounds: int = 100
    require_behaviour: bool = True  # a model failing a behaviour check is not saved
    # conditions in the rule language whose every match the model must flag (a team's own
    # patterns, checked beside the built-in ones: training/behaviour.py)
    expect_flagged: tuple[str, ...] = ()
    costs: CostModel = field(default_factory=CostModel)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    import numba
    import onnx
    import onnxmltools
    import onnxruntime
    import ray
    import sklearn
    import xgboost

    return {
        "python": platform.python_version(),
        "xgboost": xgboost.__version__,
        "onnx": onnx.__version__,
        "onnxmltools": onnxmltools.__version__,
        "onnxruntime": onnxruntime.__version__,
        "ray": ray.__version__,
        "numba": numba.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
    }


def choose_class_weight(
    train: pd.DataFrame, valid: pd.DataFrame, opts: TrainOptions, say: Say
) -> tuple[float, list[dict[str, Any]]]:
    """Pick scale_pos_weight on validation, recall first: each weight's REVIEW threshold is
    set to reach the recall target (`policy.recall`), and the weight that gets there with
    the fewest false positives wins (then the higher AP)."""
    x, y = bst.design_matrix(train), bst.labels(train)
    xv, yv = bst.design_matrix(valid), bst.labels(valid)
    trials: list[dict[str, Any]] = []
    for w in opts.class_weights:
        params = {**bst.DEFAULT_PARAMS, "scale_pos_weight": w}
        model, _ = bst.fit_booster(x, y, params, opts.selection_rounds)
        scores = bst.predict(model, xv)
        th = recall_first_thresholds(yv, scores, opts.target)
        m: dict[str, Any] = evaluate_scores(valid, scores, th.review, th.block)
        fp = int(np.sum((scores > th.review) & (yv == 0)))
        trials.append({"scale_pos_weight": w, "false_positives_at_target": fp, **m})
        say(
            f"  scale_pos_weight={w:g}: validation recall {m['review']['recall']:.3f} at "
            f"REVIEW > {th.review:.3f} with {fp} false positives; AP "
            f"{m['average_precision']:.3f}"
        )
    best = min(
        trials,
        key=lambda t: (t["false_positives_at_target"], -np.nan_to_num(t["average_precision"])),
    )
    return float(best["scale_pos_weight"]), trials


def by_scenario(frame: pd.DataFrame, scores: np.ndarray, th: Thresholds) -> dict[str, Any]:
    """Share of each fraud scenario's transactions flagged (REVIEW or BLOCK) and blocked."""
    if "fraud_scenario" not in frame:
        return {}
    out: dict[str, Any] = {}
    codes = frame["fraud_scenario"].to_numpy()
    for code in sorted(set(codes.tolist()) - {0}):
        mine = codes == code
        out[SCENARIOS.get(int(code), str(code))] = {
            "transactions": int(mine.sum()),
            "flagged": float(np.mean(scores[mine] > th.review)),
            "blocked": float(np.mean(scores[mine] > th.block)),
        }
    return out


def train_model(
    input_path: Path,
    output_dir: Path,
    opts: TrainOptions = TrainOptions(),
    config: EngineConfig | None = None,
    say: Say = print,
) -> ModelCard:
    """Train, check ONNX parity on the whole test set, write the model directory."""
    started = time.perf_counter()
    config = config or EngineConfig(label_delay_days=opts.delay_days)
    say(f"reading {input_path}")
    transactions = read_transactions(input_path)
    say(f"computing features for {len(transactions):,} transactions")
    t0 = time.perf_counter()
    feats = offline_features(transactions, config)
    feature_seconds = time.perf_counter() - t0
    blocks = time_blocks(
        feats, opts.delay_days, opts.valid_days, opts.test_days, opts.train_days, opts.warmup_days
    )
    say(
        f"blocks: train {len(blocks.train):,} rows from {blocks.train_start.date()} "
        f"({blocks.train_days} days), validation {len(blocks.validation):,} from "
        f"{blocks.validation_start.date()}, test {len(blocks.test):,} "
        f"from {blocks.test_start.date()}"
    )
    if blocks.train["is_fraud"].sum() == 0:
        raise ValueError("the training block holds no fraud: simulate more days or customers")

    weight, trials = choose_class_weight(blocks.train, blocks.validation, opts, say)
    params = {**bst.DEFAULT_PARAMS, "scale_pos_weight": weight}
    say(f"fitting {opts.rounds} rounds with {opts.engine} (scale_pos_weight={weight:g})")
    t0 = time.perf_counter()
    if opts.engine == "ray":
        from training.ray_trainer import train_with_ray

        model, fit_metrics = train_with_ray(
            blocks.train, blocks.validation, params, opts.rounds, opts.workers
        )
    else:
        model, fit_metrics = bst.fit_booster(
            bst.design_matrix(blocks.train),
            bst.labels(blocks.train),
            params,
            opts.rounds,
            bst.design_matrix(blocks.validation),
            bst.labels(blocks.validation),
        )
    fit_seconds = time.perf_counter() - t0

    valid_scores = bst.predict(model, bst.design_matrix(blocks.validation))
    valid_y, valid_amounts = (
        bst.labels(blocks.validation),
        blocks.validation["TX_AMOUNT"].to_numpy(),
    )
    current = recall_first_thresholds(valid_y, valid_scores, opts.target)
    say(
        f"recall-first thresholds on validation: REVIEW > {current.review:.3f} (recall "
        f"{opts.target.review_recall:.0%}), BLOCK > {current.block:.3f} (precision "
        f"{opts.target.block_precision:.0%})"
    )
    metrics = {}
    for name, frame in (("validation", blocks.validation), ("test", blocks.test)):
        scores = bst.predict(model, bst.design_matrix(frame))
        metrics[name] = evaluate_scores(frame, scores, current.review, current.block)
        metrics[name]["by_scenario"] = by_scenario(frame, scores, current)
    cost = cost_optimal_thresholds(
        valid_y, valid_scores, valid_amounts, opts.costs, current=current
    )
    say(
        f"cost-optimal thresholds on validation: REVIEW > {cost['review']:.2f}, BLOCK > "
        f"{cost['block']:.2f}: cost {cost['cost']['total']:,.0f} vs "
        f"{cost['cost_at_current']['total']:,.0f} at {current.review}/{current.block}"
    )

    x_test = bst.design_matrix(blocks.test)
    onnx_bytes = to_onnx(model, len(FEATURE_NAMES))
    parity = check_parity(model, onnx_bytes, x_test)
    say(f"ONNX parity on {len(x_test):,} test rows: max abs diff {parity:.2e}")
    checks = behaviour_checks(
        transactions[transactions["timestamp"] >= blocks.test_start - pd.Timedelta(days=30)],
        lambda x: bst.predict(model, x),
        current,
        config,
        since=blocks.test_start,
        expect_flagged=tuple(parse(text) for text in opts.expect_flagged),
    )
    for c in checks:
        say(f"  behaviour: {c.name}: {c.status} ({c.detail})")
    failed = [c for c in checks if c.failed]
    if failed and opts.require_behaviour:
        raise BehaviourError(
            "not saved: the model fails " + "; ".join(f"{c.name} ({c.detail})" for c in failed)
        )

    card = ModelCard.model_validate({
        "name": output_dir.name,
        "version": f"{output_dir.name}-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}",
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "features": list(FEATURE_NAMES),
        "input": {"name": "input", "dtype": "float32", "shape": [None, len(FEATURE_NAMES)]},
        "output": "probabilities[:, 1] = P(fraud)",
        "thresholds": current.model_dump(),
        "cost_thresholds": cost,
        "engine_config": config.model_dump(),
        "training": {
            "engine": opts.engine,
            "workers": opts.workers if opts.engine == "ray" else 1,
            "rounds": opts.rounds,
            "params": params,
            "class_weight_search": trials,
            "recall_target": opts.target.model_dump(),
            "behaviour": summary(checks),
            "fit_metrics": fit_metrics,
            "fit_seconds": round(fit_seconds, 2),
            "feature_seconds": round(feature_seconds, 2),
            "total_seconds": round(time.perf_counter() - started, 2),
        },
        "data": {
            "path": str(input_path),
            "sha256": file_sha256(Path(input_path)),
            "rows": len(transactions),
            "window": [str(feats["timestamp"].min()), str(feats["timestamp"].max())],
            "train_start": str(blocks.train_start.date()),
            "train_days": blocks.train_days,
            "validation_start": str(blocks.validation_start.date()),
            "test_start": str(blocks.test_start.date()),
            "delay_days": opts.delay_days,
        },
        "metrics": metrics,
        "onnx_parity_max_abs_diff": parity,
        "libraries": library_versions(),
    })  # fmt: skip
    directory = ModelDir(output_dir)
    directory.write(onnx_bytes, bytes(model.save_raw("json")), card)
    threshold_plot(
        bst.labels(blocks.test),
        bst.predict(model, x_test),
        current.review,
        current.block,
        directory.plot,
        f"{output_dir.name}: test block",
    )
    grid = np.round(np.linspace(0.01, 0.99, 99), 4)
    cost_plot(
        grid,
        cost_grid(valid_y, valid_scores, valid_amounts, opts.costs, grid),
        cost,
        directory.cost_plot,
        f"{output_dir.name}: expected cost on validation",
    )
    return card
