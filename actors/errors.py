"""The service's one error root: every error a request can end in knows its HTTP answer.

`ServiceError` carries the status, a machine-readable `reason`, the human `detail` and, for
a temporary failure, `retry_after_s`; `deployments.http.errors.render` turns any of them into
the one response shape, for FastAPI's handlers and the pure-ASGI single route alike. Error
bodies name the field or id at fault and never echo a rejected body (a card number would
come back and could reach logs).
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    """Root of the service's own errors. Subclasses set `status` (and usually `reason`)."""

    status: ClassVar[int] = 500
    reason: str = "internal"

    def __init__(self, detail: str, *, reason: str | None = None, retry_after_s: int | None = None):
        super().__init__(detail)
        self.detail = detail
        if reason is not None:
            self.reason = reason
        self.retry_after_s = retry_after_s

    def body(self) -> dict[str, Any]:
        """The JSON body of the answer."""
        return {"detail": self.detail}


class Unavailable(ServiceError):
    """Temporarily unable to answer (a shard, the state store or the model): the client
    should retry the same request after `retry_after_s`."""

    status = 503

    def __init__(self, reason: str, retry_after_s: int = 1) -> None:
        super().__init__(
            "temporarily unavailable; retry the same request",
            reason=reason,
            retry_after_s=retry_after_s,
        )

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, "reason": self.reason}


class Invalid(ServiceError):
    """A request value the service cannot take (the detail names the field, never the value)."""

    status = 422
    reason = "invalid"


class InvalidFields(Invalid):
    """Values that passed the schema but not the service's configuration (a currency with
    no rate, say): answered in the shape of a schema error, each field with its message."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__(f"invalid {', '.join(dict.fromkeys(f for f, _ in errors))}")
        self.errors = errors

    def body(self) -> dict[str, Any]:
        return {
            "detail": self.detail,
            "errors": [{"field": f, "message": m, "type": "value_error"} for f, m in self.errors],
        }


class NotFound(ServiceError):
    """What the request names does not exist (the detail says which field)."""

    status = 404
    reason = "not_found"


class Conflict(ServiceError):
    """The request contradicts what is stored."""

    status = 409
    reason = "conflict"


class Stale(ServiceError):
    """A write based on a version that is no longer current (`If-Match`): nothing stored."""

    status = 412
    reason = "stale"

    def __init__(self, detail: str, current: int) -> None:
        super().__init__(detail)
        self.current = current

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, "reason": self.reason, "version": self.current}


class TooLarge(ServiceError):
    """The request carries more than the service takes in one call."""

    status = 413
    reason = "too_large"


class TransactionConflict(Conflict):
    """Transaction ids reused with a different body: nothing of those was applied."""

    reason = "transaction_id_reused"

    def __init__(self, transaction_ids: list[str]) -> None:
        super().__init__(
            "transaction_id already used with a different body; a retry must repeat the "
            "original request exactly"
        )
        self.transaction_ids = transaction_ids

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, "transaction_ids": self.transaction_ids}
