"""HTTP answers for errors: the service's own (`actors.errors.ServiceError`, one renderer
for FastAPI and the pure-ASGI single route) and request validation.

Error bodies name the field and never echo the rejected input: FastAPI's default 422 body
repeats what was sent (a card number would come back and could reach logs), and a NaN in
it can turn the error itself into a 500.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from actors.errors import ServiceError
from deployments.http.schemas import error_field


def render(exc: ServiceError) -> JSONResponse:
    """The answer for any of the service's own errors, wherever it is raised."""
    headers = None if exc.retry_after_s is None else {"Retry-After": str(exc.retry_after_s)}
    return JSONResponse(status_code=exc.status, content=exc.body(), headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": error_field(e),
                "message": str(e.get("msg", "invalid")),
                "type": str(e.get("type", "value_error")),
            }
            for e in exc.errors()
        ]
        fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
        return JSONResponse(
            status_code=422, content={"detail": f"invalid {fields}", "errors": errors}
        )

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return render(exc)
