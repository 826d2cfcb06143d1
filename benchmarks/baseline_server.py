"""The seed's design, kept as the baseline to beat: one FastAPI/uvicorn process, state in
process memory, the same feature engine, schemas and ONNX model as the service.

Run: python -m benchmarks.baseline_server --port 8100 (benchmarks/compare.py starts it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import uvicorn
from fastapi import FastAPI

from deployments.http.schemas import BatchIn, BatchOut, ScoreOut, TransactionIn
from deployments.scoring.pipeline import gateway
from features.engine import FeatureEngine
from features.ids import OFFLINE
from models.card import ModelDir
from models.onnx import load_model
from policy.decision import decide

REPO = Path(__file__).resolve().parent.parent


def build_app(model_dir: Path) -> FastAPI:
    app = FastAPI(title="baseline")
    engine = FeatureEngine()
    model = load_model(model_dir, threads=1)
    # The served card's thresholds, as the service uses, so both flag the same rows.
    thresholds = ModelDir(model_dir).read_card().thresholds

    def score(txs: list[TransactionIn]) -> list[ScoreOut]:
        n = len(txs)
        x = engine.transact(
            [t.user_id for t in txs],
            [t.terminal_id for t in txs],
            np.fromiter((t.time_ms for t in txs), np.int64, n),
            np.fromiter((t.amount for t in txs), np.float64, n),
            np.fromiter((OFFLINE.hash64(t.transaction_id) for t in txs), np.int64, n),
            gateway(txs),
        )
        scores = model.score(x)
        decisions = decide(scores, thresholds)
        return [
            ScoreOut(
                transaction_id=t.transaction_id,
                score=float(scores[i]),
                decision=str(decisions[i]),
                model_version=model.version,
            )
            for i, t in enumerate(txs)
        ]

    @app.post("/v1/transactions", response_model=ScoreOut, response_model_exclude_none=True)
    async def one(tx: TransactionIn) -> ScoreOut:  # async: the engine is single-threaded
        return score([tx])[0]

    @app.post("/v1/transactions/batch", response_model=BatchOut, response_model_exclude_none=True)
    async def batch(body: BatchIn) -> BatchOut:
        return BatchOut(results=score(body.transactions))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=8100)
    ap.add_argument("--model", type=Path, default=REPO / "models" / "default")
    args = ap.parse_args()
    uvicorn.run(
        build_app(args.model),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
