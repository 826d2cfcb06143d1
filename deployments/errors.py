"""Error bodies that name the field and never echo the rejected input, and the service's
own failure modes (conflict, temporarily unavailable).

FastAPI's default 422 body repeats what was sent (a card number would come back and could
reach logs), and a NaN in it can turn the error itself into a 500.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class ConflictError(Exception):
    """A transaction id was reused with a different body."""

    def __init__(self, transaction_ids: list[str]) -> None:
        super().__init__(transaction_ids)
        self.transaction_ids = transaction_ids


class ServiceUnavailable(Exception):
    """A shard, the state store or the model cannot answer now; the client should retry."""

    def __init__(self, reason: str, retry_after_s: int = 1) -> None:
        super().__init__(reason)
        self.reason, self.retry_after_s = reason, retry_after_s


def unavailable(reason: str, retry_after_s: int) -> JSONResponse:
    return JSONResponse(
        status_code=503,
        content={"detail": "temporarily unavailable; retry the same request", "reason": reason},
        headers={"Retry-After": str(retry_after_s)},
    )


def _field(loc: tuple[object, ...]) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": _field(tuple(e.get("loc", ()))),
                "message": str(e.get("msg", "invalid")),
                "type": str(e.get("type", "value_error")),
            }
            for e in exc.errors()
        ]
        fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
        return JSONResponse(
            status_code=422, content={"detail": f"invalid {fields}", "errors": errors}
        )

    @app.exception_handler(ConflictError)
    async def _conflict(_: Request, exc: ConflictError) -> JSONResponse:
        return conflict(exc)

    @app.exception_handler(ServiceUnavailable)
    async def _unavailable(_: Request, exc: ServiceUnavailable) -> JSONResponse:
        return unavailable(exc.reason, exc.retry_after_s)


def conflict(exc: ConflictError) -> JSONResponse:
    return JSONResponse(
        status_code=409,
        content={
            "detail": "transaction_id already used with a different body; a retry must "
            "repeat the original request exactly",
            "transaction_ids": exc.transaction_ids,
        },
    )


def render(exc: Exception) -> JSONResponse | None:
    """The answer for the service's own failure modes, wherever they are raised: the app's
    exception handlers and the fast single-transaction route give the same bodies."""
    if isinstance(exc, ConflictError):
        return conflict(exc)
    if isinstance(exc, ServiceUnavailable):
        return unavailable(exc.reason, exc.retry_after_s)
    return None
