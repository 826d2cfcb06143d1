"""Offline benchmarks: simulator and feature-replay throughput, Ray Train vs plain XGBoost,
ONNX Runtime vs XGBoost inference latency. Run: python -m benchmarks offline [--quick]."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import percentiles_us, repeat, save
from features.offline import offline_features
from features.transactions import read_transactions
from simulator.config import SimulationConfig
from simulator.generate import write_parquet
from training import booster as bst
from training.export import to_onnx
from training.splits import time_blocks


def bench_simulator(days: int, tmp: Path) -> tuple[dict[str, Any], Path]:
    path = tmp / "tx.parquet"
    t0 = time.perf_counter()
    stats = write_parquet(SimulationConfig.handbook(n_days=days), path)
    dt = time.perf_counter() - t0
    res = {
        "transactions": stats["transactions"],
        "seconds": dt,
        "transactions_per_s": stats["transactions"] / dt,
    }
    print(f"simulator: {res['transactions_per_s']:,.0f} tx/s ({stats['transactions']:,} rows)")
    return res, path


def bench_replay(path: Path, runs: int) -> tuple[dict[str, Any], Any]:
    tx = read_transactions(path)
    offline_features(tx.head(1000))  # compile / load the numba cache outside the timing
    times = repeat(lambda: offline_features(tx), runs)
    med = float(np.median(times))
    res = {
        "transactions": len(tx),
        "runs": times,
        "median_s": med,
        "transactions_per_s": len(tx) / med,
    }
    print(f"feature replay: {res['transactions_per_s']:,.0f} tx/s (median of {runs})")
    return res, offline_features(tx)


def bench_training(features: Any, rounds: int) -> dict[str, Any]:
    from training.ray_trainer import train_with_ray

    blocks = time_blocks(features)
    x, y = bst.design_matrix(blocks.train), bst.labels(blocks.train)
    params = {**bst.DEFAULT_PARAMS, "nthread": 2}
    t0 = time.perf_counter()
    bst.fit_booster(x, y, params, rounds)
    plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    train_with_ray(blocks.train, blocks.validation, params, rounds, num_workers=2)
    ray_s = time.perf_counter() - t0
    res = {
        "train_rows": len(x),
        "rounds": rounds,
        "threads_total": 2,
        "plain_xgboost_s": plain,
        "ray_train_2_workers_s": ray_s,
        "ratio_ray_over_plain": ray_s / plain,
    }
    print(f"training {len(x):,} rows x {rounds} rounds: plain {plain:.1f}s, Ray Train {ray_s:.1f}s")
    return res


def bench_inference(features: Any) -> dict[str, Any]:
    from models.onnx import make_session

    x = bst.design_matrix(features)
    model, _ = bst.fit_booster(x[:200_000], bst.labels(features)[:200_000], bst.DEFAULT_PARAMS, 200)
    sess = make_session(to_onnx(model, x.shape[1]), threads=1)
    sess2 = make_session(to_onnx(model, x.shape[1]), threads=2)
    one = x[:1]
    out: dict[str, Any] = {"model": "200 trees, depth 6"}
    out["single_row"] = {
        "onnxruntime_1_thread": percentiles_us(
            repeat(lambda: sess.run(None, {"input": one}), 2000)
        ),
        "xgboost_inplace_predict": percentiles_us(repeat(lambda: model.inplace_predict(one), 2000)),
    }
    batch = x[:4096]
    for name, fn in (
        ("onnxruntime_1_thread", lambda: sess.run(None, {"input": batch})),
        ("onnxruntime_2_threads", lambda: sess2.run(None, {"input": batch})),
        ("xgboost_inplace_predict", lambda: model.inplace_predict(batch)),
    ):
        med = float(np.median(repeat(fn, 30)))
        out.setdefault("batch_4096", {})[name] = {"median_s": med, "rows_per_s": 4096 / med}
    s = out["single_row"]
    print(
        f"one row p50: ORT {s['onnxruntime_1_thread']['p50_us']:.0f} us, "
        f"xgboost {s['xgboost_inplace_predict']['p50_us']:.0f} us"
    )
    for k, v in out["batch_4096"].items():
        print(f"batch 4096 {k}: {v['rows_per_s']:,.0f} rows/s")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="30 days, no Ray Train (smoke run)")
    args = ap.parse_args(argv)
    days = 30 if args.quick else 183
    with tempfile.TemporaryDirectory() as tmp:
        sim, path = bench_simulator(days, Path(tmp))
        rep, features = bench_replay(path, 1 if args.quick else 3)
        result = {"simulator": sim, "feature_replay": rep, "inference": bench_inference(features)}
        if not args.quick:
            result["training"] = bench_training(features, 100)
    save("offline_quick" if args.quick else "offline", result)


if __name__ == "__main__":
    main()
