"""Ingress: the FastAPI app. Each route parses, calls the pipeline, and returns.

No `from __future__ import annotations` here: FastAPI must see real types on the routes
that Serve moves onto the replica class.
"""

import hmac
import os
from typing import Any

import orjson
from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from actors.ray_shards import RayShardClient, ShardUnavailable
from deployments import errors
from deployments.limits import BodySizeLimit
from deployments.microbatch import MicroBatcher
from deployments.model_client import HandleModel
from deployments.pipeline import ScoringPipeline
from deployments.schemas import BatchIn, BatchOut, FeedbackIn, FeedbackOut, ScoreOut, TransactionIn
from features.decision import Thresholds

app = FastAPI(
    title="fraudguard",
    version="0.1.0",
    description="Real-time card-fraud decisions: BLOCK, REVIEW or LEGIT.",
)
errors.install(app)
API_KEY_ENV = "FRAUD_API_KEY"
MAX_BODY_BYTES = 8 * 1024 * 1024  # a full 10,000-transaction batch is about 1.5 MB
app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)


def _answer(o: Any) -> Any:
    if isinstance(o, ScoreOut):
        d = o.__dict__
        return (
            d if d.get("features") is not None else {k: v for k, v in d.items() if k != "features"}
        )
    raise TypeError


def json_response(body: Any) -> Response:
    """orjson straight from our own objects: no second validation pass over 10,000 answers."""
    return Response(orjson.dumps(body, default=_answer), media_type="application/json")


@app.exception_handler(ShardUnavailable)
async def _shard_unavailable(_: Request, exc: ShardUnavailable) -> Response:
    return errors.unavailable(exc.reason, retry_after_s=2)


@app.middleware("http")
async def _require_api_key(request: Request, call_next: Any) -> Response:
    """With FRAUD_API_KEY set, every /v1 route needs `Authorization: Bearer <key>`."""
    key = os.environ.get(API_KEY_ENV)
    if key and request.url.path.startswith("/v1"):
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            return JSONResponse(
                {"detail": "missing or wrong API key"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
    return await call_next(request)


@serve.deployment(name="Ingress", ray_actor_options={"num_cpus": 0})
@serve.ingress(app)
class Ingress:
    def __init__(self, model: DeploymentHandle, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.model = model
        shard_settings = {k: settings[k] for k in ("engine", "state", "dedup")}
        shards = RayShardClient(
            settings["n_user_shards"],
            settings["n_terminal_shards"],
            shard_settings,
            retry_for_s=settings["shard_retry_seconds"],
        )
        model_client = HandleModel(model, retry_for_s=settings["model_retry_seconds"])
        self.pipeline = ScoringPipeline(shards, model_client, Thresholds())
        mb = settings["micro_batch"]
        self.batcher: MicroBatcher[TransactionIn, ScoreOut | None] = MicroBatcher(
            self.pipeline.score_items, mb["max_wait_ms"] / 1000, mb["max_transactions"]
        )

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Thresholds can change at runtime through `user_config.thresholds`."""
        self.pipeline.thresholds = Thresholds(**user_config.get("thresholds", {}))

    @app.post("/v1/transactions", response_model=ScoreOut, response_model_exclude_none=True)
    async def score_one(self, tx: TransactionIn, include_features: bool = Query(False)) -> Response:
        if include_features:  # diagnostic: not grouped with other requests
            out = (await self.pipeline.score_items([tx], True))[0]
        else:
            out = (await self.batcher.submit([tx]))[0]
        if out is None:
            raise errors.ConflictError([tx.transaction_id])
        return json_response(out)

    @app.post("/v1/transactions/batch", response_model=BatchOut, response_model_exclude_none=True)
    async def score_batch(self, batch: BatchIn, include_features: bool = Query(False)) -> Response:
        limit = self.settings["max_batch_transactions"]
        if len(batch.transactions) > limit:
            raise HTTPException(413, f"transactions: at most {limit} per batch")
        results = await self.pipeline.score(batch.transactions, include_features)
        return json_response({"results": results})

    @app.post("/v1/feedback", response_model=FeedbackOut)
    async def feedback(self, body: FeedbackIn) -> FeedbackOut:
        missing = await self.pipeline.feedback(body.labels)
        return FeedbackOut(applied=len(body.labels) - len(missing), not_found=missing)

    @app.get("/v1/model")
    async def model_card(self) -> dict[str, Any]:
        return await self.model.card.remote()

    @app.get("/healthz")
    async def healthz(self) -> JSONResponse:
        shards_ok = await self.pipeline.shards.ping()  # type: ignore[attr-defined]
        try:
            version = (await self.model.card.remote())["version"]
        except Exception:  # the model replica is down or has no model
            version = None
        ok = shards_ok and version is not None
        body = {
            "status": "ok" if ok else "unavailable",
            "shards": shards_ok,
            "model_version": version,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/v1/stats")
    async def stats(self) -> dict[str, Any]:
        return {
            "shards": await self.pipeline.shards.stats(),  # type: ignore[attr-defined]
            "micro_batching": self.batcher.stats(),
        }
