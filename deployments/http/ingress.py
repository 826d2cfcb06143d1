"""Ingress: the FastAPI app. Each route parses, calls the pipeline, and returns.

No `from __future__ import annotations` here: FastAPI must see real types on the routes
that Serve moves onto the replica class.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Header, Query, Request, Response, WebSocket
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from actors import heap
from actors.errors import NotFound, TooLarge, TransactionConflict
from actors.paths import REPO_ROOT
from deployments.http import errors
from deployments.http.access import Access, KeyRing, RateLimits, Sessions
from deployments.http.auth import AccessGuard, serving_access
from deployments.http.console import HEADERS, ConsoleFiles
from deployments.http.counted import ResponseCounter
from deployments.http.deadline import HEADER as DEADLINE_HEADER
from deployments.http.deadline import deadline_for
from deployments.http.fast_route import SingleTransactionRoute, serving_replica
from deployments.http.limits import BodySizeLimit
from deployments.http.live_socket import LiveChannel
from deployments.http.schemas import (
    UNKNOWN_FIELDS,
    BackfillIn,
    BackfillOut,
    BatchIn,
    BatchOut,
    FeedbackIn,
    FeedbackOut,
    ListEditIn,
    ResolveIn,
    RollbackIn,
    RulesIn,
    ScoreOut,
    TransactionIn,
)
from deployments.http.timing import StageTiming
from deployments.model.served import ServedModel
from deployments.scoring.microbatch import MicroBatcher
from deployments.scoring.pipeline import Answer
from deployments.scoring.service import ScoringService
from deployments.serve_mode import serve_mode
from deployments.settings import AppArgs
from policy.rules import ListName

log = logging.getLogger(__name__)
SSE_MAX_SECONDS = 600  # a live stream ends after this; EventSource reconnects by itself

app = FastAPI(
    title="fraudguard",
    version="0.1.0",
    description="Real-time card-fraud decisions: BLOCK, REVIEW or LEGIT.",
)
errors.install(app)
MAX_BODY_BYTES = 8 * 1024 * 1024  # a full 10,000-transaction batch is about 1.5 MB
# Middleware added last runs first: the status counter, the access check, then body size,
# then the fast single route (each finds this replica's `Ingress` itself: Serve copies the
# app into each replica).
app.add_middleware(SingleTransactionRoute, find_target=serving_replica)
app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
app.add_middleware(AccessGuard, find_access=serving_access, router=app.router)
app.add_middleware(ResponseCounter, find_target=serving_replica)  # counts every answer
app.add_middleware(StageTiming)  # outermost: times a request that asks, from its start


# `If-Match` on a policy write: the version (`ETag` of GET /v1/policy) the edit was made on.
IF_MATCH = Header(None, alias="If-Match", pattern=r'^"?[0-9]{1,12}"?$')


def policy_version(if_match: str | None) -> int | None:
    return None if if_match is None else int(if_match.strip('"'))


def _answer(o: Any) -> Any:
    if isinstance(o, Answer):
        return o.as_dict()
    raise TypeError


def json_response(body: Any) -> Response:
    """orjson straight from our own objects: no second validation pass over 10,000 answers."""
    raw = orjson.dumps(body, default=_answer, option=orjson.OPT_PASSTHROUGH_DATACLASS)
    return Response(raw, media_type="application/json")


def access_for(settings: AppArgs, scoring: ScoringService) -> Access:
    """Keys from the configured file (and FRAUD_API_KEY), sessions signed with a key derived
    from the id key (the same on every replica), rate limits where the config says."""
    cfg = settings.access
    path = None if cfg.keys_file is None else REPO_ROOT / cfg.keys_file
    return Access(
        KeyRing(path),
        Sessions(scoring.pipeline.ids.subkey("dashboard-session"), cfg.session_minutes),
        RateLimits(cfg.rate_storage, cfg.default_rate),
    )


@serve.deployment(name="Ingress", ray_actor_options={"num_cpus": 0})
@serve.ingress(app)
class Ingress:
    def __init__(
        self,
        model: DeploymentHandle[Any],
        settings: AppArgs,
        stream: DeploymentHandle[Any] | None = None,
    ) -> None:
        self.settings = settings
        self.model = model
        self.stream = stream  # the StreamConsumer, when the stream path is enabled
        scoring = ScoringService(model, settings)
        self.scoring = scoring
        self.shards, self.pipeline = scoring.shards, scoring.pipeline
        self.desk, self.desk_service = scoring.desk, scoring.desk_service
        self.metrics, self.reporter = scoring.metrics, scoring.reporter
        mb = settings.micro_batch
        self.batcher: MicroBatcher[TransactionIn, Answer | None] = MicroBatcher(
            lambda txs, deadline: scoring.score_items(txs, False, deadline),
            mb.max_wait_ms / 1000,
            mb.max_transactions,
            mb.max_in_flight,
        )
        self.access = access_for(settings, scoring)
        if not self.access.keys.enabled:
            log.warning("access: no API keys configured; every route is open (loopback only)")
        self.serve_mode = serve_mode()
        self.console = ConsoleFiles(Path(settings.console_dir))  # its files, listed once
        if not self.console.built:
            log.warning("console: %s is not built; /dashboard answers 503", self.console.root)
        if "hint" in self.serve_mode:  # Serve's own logger: the replica log and `serve run`
            logging.getLogger("ray.serve").warning("%s", self.serve_mode["hint"])
        self.singles = 0  # single transactions answered by this replica
        self.framework_singles = 0  # ...of which FastAPI routed (the rest: the fast route)
        heap.quiet()  # Serve freezes what the replica holds once this returns (actors.heap)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Thresholds (or `thresholds_from_model`) change at runtime through user_config."""
        self.scoring.reconfigure(user_config)

    def __del__(self) -> None:
        """Serve stops the replica (a redeploy, a downscale, `serve shutdown`)."""
        scoring = getattr(self, "scoring", None)  # absent if __init__ failed
        if scoring is not None:
            scoring.close()

    def _timed(self, route: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        self.reporter.latencies.append(elapsed * 1000)
        self.metrics.request(route, elapsed)

    # -- scoring ------------------------------------------------------------------------------
    @app.post("/v1/transactions", response_model=ScoreOut, response_model_exclude_none=True)
    async def score_one(
        self,
        tx: TransactionIn,
        include_features: bool = Query(False),
        deadline_ms: str | None = Header(None, alias=DEADLINE_HEADER),
    ) -> Response:
        """Most requests never reach this: `SingleTransactionRoute` answers them through
        `score_single` first (deployments/http/fast_route.py)."""
        self.framework_singles += 1
        return await self.score_single(tx, include_features, deadline_ms)

    async def score_single(
        self, tx: TransactionIn, include_features: bool = False, deadline_ms: str | None = None
    ) -> Response:
        started = time.perf_counter()
        settings = self.settings
        deadline = deadline_for(deadline_ms, settings.deadline_ms, settings.deadline_reserve_ms)
        self.singles += 1
        self.pipeline.check_amounts((tx,))
        self.reporter.ensure_running()
        if include_features:  # diagnostic: not grouped with other requests
            out = (await self.scoring.score_items([tx], True, deadline))[0]
        else:
            out = (await self.batcher.submit([tx], deadline))[0]
        if out is None:
            raise TransactionConflict([tx.transaction_id])
        self._timed("single", started)
        return json_response(out)

    @app.post("/v1/transactions/batch", response_model=BatchOut, response_model_exclude_none=True)
    async def score_batch(
        self,
        batch: BatchIn,
        include_features: bool = Query(False),
        deadline_ms: str | None = Header(None, alias=DEADLINE_HEADER),
    ) -> Response:
        started = time.perf_counter()
        # A batch (a backfill, a replay) waits for state unless its client sets a budget.
        reserve = self.settings.deadline_reserve_ms
        deadline = None if deadline_ms is None else deadline_for(deadline_ms, 60_000, reserve)
        self.reporter.ensure_running()
        limit = self.settings.max_batch_transactions
        if len(batch.transactions) > limit:
            raise TooLarge(f"transactions: at most {limit} per batch")
        self.pipeline.check_amounts(batch.transactions, "transactions.")
        results = await self.scoring.score(batch.transactions, include_features, deadline)
        self._timed("batch", started)
        return json_response({"results": results})

    @app.post("/v1/backfill", response_model=BackfillOut)
    async def backfill(self, body: BackfillIn) -> BackfillOut:
        """History into state, deciding nothing (`fraud backfill`): labels first, then the
        transactions, through the engine that scores (admin scope)."""
        limit = self.settings.max_batch_transactions
        if len(body.transactions) > limit:
            raise TooLarge(f"transactions: at most {limit} per request")
        self.pipeline.check_amounts(body.transactions, "transactions.")
        missing = await self.pipeline.feedback(body.labels) if body.labels else []
        done = await self.pipeline.backfill(body.transactions) if body.transactions else None
        return BackfillOut(
            applied=done.applied if done else 0,
            duplicates=done.duplicates if done else 0,
            conflicts=done.conflicts if done else [],
            labels_applied=len(body.labels) - len(missing),
            labels_not_found=missing,
        )

    @app.get("/v1/transactions/{transaction_id}")
    async def transaction(self, transaction_id: str = PathParam(max_length=64)) -> dict[str, Any]:
        """A decision with its reasons and label: the desk's recent view, else the record."""
        found = await self.desk_service.transaction(transaction_id)
        if found is None:
            raise NotFound("transaction_id: no stored decision for this id")
        return found

    @app.post("/v1/feedback", response_model=FeedbackOut)
    async def feedback(self, body: FeedbackIn) -> FeedbackOut:
        missing = await self.desk_service.feedback(body.labels)
        return FeedbackOut(applied=len(body.labels) - len(missing), not_found=missing)

    # -- review queue and labels ----------------------------------------------------------------
    @app.get("/v1/reviews")
    async def reviews(
        self,
        status: str = Query("open", pattern="^(open|resolved|fraud|legit)$"),
        limit: int = Query(50, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=1_000_000),
        min_score: float = Query(0.0, ge=0.0, le=1.0),
        rule: str | None = Query(None, max_length=80),
    ) -> dict[str, Any]:
        """REVIEW decisions, oldest first."""
        return await self.desk.review_page(status, limit, offset, min_score, rule)

    @app.post("/v1/reviews/{transaction_id}")
    async def resolve(
        self, body: ResolveIn, request: Request, transaction_id: str = PathParam(max_length=64)
    ) -> dict[str, Any]:
        return await self.desk_service.resolve(
            transaction_id, body.outcome, body.analyst, body.note, request.state.key_id
        )

    @app.get("/v1/cases/{transaction_id}")
    async def case(self, transaction_id: str = PathParam(max_length=64)) -> dict[str, Any]:
        """A held decision as an analyst decides it: its review, the recent decisions of its
        card and terminal, each reason beside the card's own normal (`policy.case`)."""
        found = await self.desk_service.case(transaction_id)
        if found is None:
            raise NotFound("transaction_id: no held decision for this id")
        return found

    @app.get("/v1/labels")
    async def labels(
        self, offset: int = Query(0, ge=0), limit: int = Query(10_000, ge=1, le=100_000)
    ) -> dict[str, Any]:
        """Every label received (chargebacks and reviews), in arrival order: for export."""
        return await self.desk.labels(offset, limit)

    # -- rules and lists ------------------------------------------------------------------------
    @app.get("/v1/policy")
    async def policy(self, response: Response) -> dict[str, Any]:
        """The version in force; its `ETag` is what a write sends back as `If-Match`."""
        described = await self.desk_service.policy()
        response.headers["ETag"] = f'"{described["version"]}"'
        return described

    @app.get("/v1/policy/history")
    async def policy_history(self) -> list[dict[str, Any]]:
        return await self.desk.policy_history()

    @app.put("/v1/policy/rules")
    async def put_rules(
        self, body: RulesIn, request: Request, if_match: str | None = IF_MATCH
    ) -> dict[str, Any]:
        key_id, based_on = request.state.key_id, policy_version(if_match)
        return await self.desk_service.put_rules(body.rules, body.comment, key_id, based_on)

    @app.post("/v1/policy/preview")
    async def preview_rules(self, body: RulesIn) -> dict[str, Any]:
        """What these rules, in place of the ones in force, would do to this replica's
        newest first answers (`policy.preview`). Nothing is stored."""
        return await self.desk_service.preview_rules(body.rules)

    @app.post("/v1/policy/lists/{name}")
    async def edit_list(
        self,
        name: ListName,
        body: ListEditIn,
        request: Request,
        if_match: str | None = IF_MATCH,
    ) -> dict[str, Any]:
        key_id, based_on = request.state.key_id, policy_version(if_match)
        return await self.desk_service.edit_list(
            name, body.add, body.remove, body.comment, key_id, based_on
        )

    @app.post("/v1/policy/rollback")
    async def rollback(
        self, body: RollbackIn, request: Request, if_match: str | None = IF_MATCH
    ) -> dict[str, Any]:
        out = await self.desk_service.rollback(
            body.version, body.comment, request.state.key_id, policy_version(if_match)
        )
        if out is None:
            raise NotFound(f"version: no policy version {body.version}")
        return out

    @app.get("/v1/audit")
    async def audit(
        self, offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000)
    ) -> dict[str, Any]:
        """Every change to policy, lists, reviews and the served model, oldest first."""
        return await self.desk.audit_page(offset, limit)

    @app.get("/v1/webhooks")
    async def webhooks(self) -> dict[str, Any]:
        """Webhook endpoints (names and URLs), pending deliveries and the latest ones."""
        return await self.desk.webhooks()

    # -- model, health, stats, live view --------------------------------------------------------
    @app.get("/v1/model")
    async def model_card(self) -> dict[str, Any]:
        served: ServedModel = await self.model.served.remote()
        return {
            **served.model_dump(mode="json"),
            "thresholds": self.pipeline.thresholds.model_dump(),
        }

    @app.get("/healthz")
    async def healthz(self) -> JSONResponse:
        self.reporter.ensure_running()
        shards_ok = await self.shards.ping()
        version = await self.scoring.model_version()
        ok = shards_ok and version is not None
        body = {
            "status": "ok" if ok else "unavailable",
            "shards": shards_ok,
            "model_version": version,
            "auth": "on" if self.access.keys.enabled else "off",
            "serve_mode": self.serve_mode,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/v1/stats")
    async def stats(self) -> dict[str, Any]:
        shadow, inprocess = self.pipeline.shadow, self.scoring.inprocess
        recorder = self.scoring.recorder
        return {
            "shards": await self.shards.stats(),
            "desk": await self.desk.stats(),
            "micro_batching": self.batcher.stats(),
            "single_route": {
                "fast": self.singles - self.framework_singles,
                "framework": self.framework_singles,
            },
            "shadow": {**vars(shadow), "replica": self.reporter.replica},
            "reasons_unavailable": self.pipeline.explain_failures,
            "model_in_process": inprocess is not None and inprocess.local,
            "serve_mode": self.serve_mode,
            "decision_log_dropped": self.shards.sink.pending.dropped_rows,
            "outbox_unsent": self.shards.sink.unsent,
            "terminal_writes_pending": self.scoring.pipeline.writes.pending,
            "degraded": dict(self.pipeline.degraded),
            "late_card_steps": self.pipeline.late.pending,
            "terminal_write_retries": self.scoring.pipeline.writes.retries,
            "unknown_fields": UNKNOWN_FIELDS.dropped,
            "decision_record": None if recorder is None else recorder.stats(),
            "stream": await self.stream.stats.remote() if self.stream is not None else None,
        }

    @app.post("/v1/session")
    async def session(self, request: Request) -> dict[str, Any]:
        """A short-lived token for the console, for the key this request came with."""
        return self.access.session(request.state.key_id)

    @app.get("/v1/live")
    async def live(self) -> dict[str, Any]:
        """The console's live view: rates, mix, latency, scores, flags, reviews, outcomes."""
        return await self._live()

    @app.get("/v1/drift")
    async def drift(self) -> dict[str, Any]:
        """Scores and features against each model's reference (`policy.drift`): the
        service's state, each column's largest PSI, and every replica's report."""
        self.reporter.ensure_running()
        summary: dict[str, Any] = (await self.desk.snapshot())["drift"]
        return summary

    async def _live(self) -> dict[str, Any]:
        snap = await self.desk.snapshot()
        served = self.scoring.served
        snap["model"] = {
            "version": served.version if served is not None else None,
            "shadow_version": served.shadow_version if served is not None else None,
            "thresholds": self.pipeline.thresholds.model_dump(),
        }
        return snap

    @app.get("/v1/live/stream")
    async def live_stream(
        self, request: Request, interval_s: float = Query(1.0, ge=0.2, le=10.0)
    ) -> StreamingResponse:
        """Server-sent events: one `live` snapshot per interval (for clients without
        WebSockets). The stream ends when its key is revoked or its token expires: access is
        asked again each tick."""
        self.reporter.ensure_running()
        key_id = getattr(request.state, "key_id", None)
        expires = getattr(request.state, "access_expires", None)

        async def events() -> AsyncIterator[bytes]:
            deadline = time.monotonic() + SSE_MAX_SECONDS
            while time.monotonic() < deadline:
                if not self.access.still_allowed(key_id, expires):
                    yield b'event: end\ndata: "access ended"\n\n'
                    return
                try:
                    body = orjson.dumps(await self._live(), option=orjson.OPT_SERIALIZE_NUMPY)
                    yield b"event: live\ndata: " + body + b"\n\n"
                except Exception as e:  # keep the stream: the next tick may work
                    yield b"event: error\ndata: " + orjson.dumps(type(e).__name__) + b"\n\n"
                await asyncio.sleep(interval_s)

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    @app.websocket("/v1/live/ws")
    async def live_ws(self, ws: WebSocket) -> None:
        """The live view pushed over a WebSocket, sampled for a slow reader; the first
        message carries a session token (`deployments.http.live_socket`)."""
        self.reporter.ensure_running()
        await LiveChannel(self._live, self.access).run(ws)

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard(self) -> Response:
        return self._console("")

    @app.get("/dashboard/{asked:path}", include_in_schema=False)
    async def dashboard_file(self, asked: str) -> Response:
        return self._console(asked)

    def _console(self, asked: str) -> Response:
        """A file of the console's static export (`deployments.http.console`)."""
        if not self.console.built:
            return JSONResponse(
                {"detail": "the console is not built: run `make setup` (it builds console/)"},
                status_code=503,
            )
        found = self.console.find(asked)
        if found is None:
            raise NotFound("no such file")
        return FileResponse(found.path, media_type=found.media_type, headers=HEADERS)
