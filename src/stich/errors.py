"""The one error tree. Every failure a caller can act on is a :class:`StichError`.

The API renders each as ``{"error": {"code", "message", "details"}}`` with its status.
"""

from __future__ import annotations

from typing import Any, ClassVar


class StichError(Exception):
    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details or {}
        self.headers = headers or {}

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class Invalid(StichError):
    status = 400
    default_code = "invalid"


class Unauthorized(StichError):
    status = 401
    default_code = "unauthorized"


class Forbidden(StichError):
    status = 403
    default_code = "forbidden"


class NotFound(StichError):
    status = 404
    default_code = "not_found"


class Conflict(StichError):
    status = 409
    default_code = "conflict"


class Locked(StichError):
    status = 423
    default_code = "locked"


class RateLimited(StichError):
    status = 429
    default_code = "rate_limited"


class Unavailable(StichError):
    status = 503
    default_code = "unavailable"


class RetryLater(Unavailable):
    """A 503 that goes away by itself (the database is busy, full or read-only for now):
    ``Retry-After`` tells clients when to try again."""

    default_code = "retry_later"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after_seconds: int = 1,
    ) -> None:
        super().__init__(
            message, code=code, details=details, headers={"Retry-After": str(retry_after_seconds)}
        )


class InvalidInput(StichError):
    """A request parameter that passed its type but not its format (cursor, filter...)."""

    status = 422
    default_code = "validation_error"
