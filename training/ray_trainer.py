"""Ray Train (V2) XGBoost training: data-parallel workers over Ray Data shards.

Each worker fits on its shard inside Ray Train's collective context and reports once at the
end (every `ray.train.report` is a barrier across workers, so per-round reporting costs a
round trip per tree).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from features.spec import FEATURE_NAMES

MODEL_FILE = "model.ubj"


def _train_loop(config: dict[str, Any]) -> None:
    import ray.train

    from training.booster import fit_booster

    def shard(name: str) -> tuple[np.ndarray, np.ndarray]:
        it = ray.train.get_dataset_shard(name)
        if it is None:
            return np.empty((0, len(FEATURE_NAMES)), np.float32), np.empty(0, np.float32)
        df = it.materialize().to_pandas()
        x = df[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
        return x, df["is_fraud"].to_numpy().astype(np.float32)

    x, y = shard("train")
    xv, yv = shard("validation")
    booster, metrics = fit_booster(x, y, config["params"], config["rounds"], xv, yv)
    rank = ray.train.get_context().get_world_rank()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            booster.save_model(str(Path(tmp) / MODEL_FILE))
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics, checkpoint=checkpoint)


def train_with_ray(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    params: dict[str, Any],
    rounds: int,
    num_workers: int = 2,
    storage_path: str | None = None,
) -> tuple[xgb.Booster, dict[str, float]]:
    """Fit with `XGBoostTrainer` on `num_workers` workers; returns the booster and metrics."""
    import ray
    import ray.data
    from ray.train import RunConfig, ScalingConfig
    from ray.train.xgboost import XGBoostTrainer

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    cols = [*FEATURE_NAMES, "is_fraud"]
    datasets: dict[str, Any] = {
        "train": ray.data.from_pandas(train[cols].reset_index(drop=True)),
        "validation": ray.data.from_pandas(validation[cols].reset_index(drop=True)),
    }
    worker_params = {**params, "nthread": max(1, int(params.get("nthread", 2)) // num_workers)}
    trainer = XGBoostTrainer(
        _train_loop,
        train_loop_config={"params": worker_params, "rounds": rounds},
        scaling_config=ScalingConfig(num_workers=num_workers, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(
            name="fraud-xgboost",
            storage_path=storage_path or tempfile.mkdtemp(prefix="fraud-train-"),
        ),
        datasets=datasets,
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train finished without a checkpoint: {result.error}")
    with result.checkpoint.as_directory() as d:
        booster = xgb.Booster(model_file=str(Path(d) / MODEL_FILE))
    return booster, dict(result.metrics or {})
