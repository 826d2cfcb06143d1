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
from features.transactions import read_transactions
from models.card import ModelCard, ModelDir
from policy.costs import CostModel, cost_grid, cost_optimal_thresholds
from policy.decision import Thresholds
from training import booster as bst
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
    review_threshold: float = 0.5
    block_threshold: float = 0.9
    class_weights: tuple[float, ...] = (1.0, 3.0, 10.0)
    selection_rounds: int = 100
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
    """Pick scale_pos_weight by validation average precision (quick local fits)."""
    x, y = bst.design_matrix(train), bst.labels(train)
    xv = bst.design_matrix(valid)
    trials: list[dict[str, Any]] = []
    for w in opts.class_weights:
        params = {**bst.DEFAULT_PARAMS, "scale_pos_weight": w}
        model, _ = bst.fit_booster(x, y, params, opts.selection_rounds)
        m: dict[str, Any] = evaluate_scores(
            valid, bst.predict(model, xv), opts.review_threshold, opts.block_threshold
        )
        trials.append({"scale_pos_weight": w, **m})
        say(
            f"  scale_pos_weight={w:g}: validation AP {m['average_precision']:.3f}, "
            f"recall@REVIEW {m['review']['recall']:.3f}"
        )
    best = max(trials, key=lambda t: (np.nan_to_num(t["average_precision"]), t["scale_pos_weight"]))
    return float(best["scale_pos_weight"]), trials


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

    metrics = {}
    for name, frame in (("validation", blocks.validation), ("test", blocks.test)):
        scores = bst.predict(model, bst.design_matrix(frame))
        metrics[name] = evaluate_scores(frame, scores, opts.review_threshold, opts.block_threshold)

    valid_scores = bst.predict(model, bst.design_matrix(blocks.validation))
    valid_y, valid_amounts = (
        bst.labels(blocks.validation),
        blocks.validation["TX_AMOUNT"].to_numpy(),
    )
    current = Thresholds(review=opts.review_threshold, block=opts.block_threshold)
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

    card = ModelCard.model_validate({
        "name": output_dir.name,
        "version": f"{output_dir.name}-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}",
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "features": list(FEATURE_NAMES),
        "input": {"name": "input", "dtype": "float32", "shape": [None, len(FEATURE_NAMES)]},
        "output": "probabilities[:, 1] = P(fraud)",
        "thresholds": {"review": opts.review_threshold, "block": opts.block_threshold},
        "cost_thresholds": cost,
        "engine_config": config.model_dump(),
        "training": {
            "engine": opts.engine,
            "workers": opts.workers if opts.engine == "ray" else 1,
            "rounds": opts.rounds,
            "params": params,
            "class_weight_search": trials,
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
        opts.review_threshold,
        opts.block_threshold,
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
