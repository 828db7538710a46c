"""One error hierarchy for everything a client can be told went wrong.

Each error carries its stable ``error_code`` and HTTP status, so the single
handler in ``api.errors`` renders the envelope and no route invents its own.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    """An expected failure with a stable code; rendered as the JSON error envelope."""

    error_code: ClassVar[str] = "INTERNAL_ERROR"
    http_status: ClassVar[int] = 500

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}
        self.extra: dict[str, Any] = extra or {}


class Unauthorized(AppError):
    error_code = "UNAUTHORIZED"
    http_status = 401


class NotFound(AppError):
    error_code = "NOT_FOUND"
    http_status = 404


class BroadcastNotFound(NotFound):
    error_code = "BROADCAST_NOT_FOUND"


class SessionNotFound(NotFound):
    error_code = "SESSION_NOT_FOUND"


class ValidationFailed(AppError):
    error_code = "VALIDATION_ERROR"
    http_status = 422


class NoRecipients(AppError):
    error_code = "NO_RECIPIENTS"
    http_status = 400


class NoValidRecipients(AppError):
    error_code = "NO_VALID_RECIPIENTS"
    http_status = 400


class TooManyRecipients(AppError):
    error_code = "TOO_MANY_RECIPIENTS"
    http_status = 413


class PayloadTooLarge(AppError):
    """The request body is larger than the server accepts (``WABROADCAST_MAX_BODY_BYTES``)."""

    error_code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class RateLimited(AppError):
    """Too many requests from one caller; ``retry_after_s`` whole seconds until the next fits."""

    error_code = "RATE_LIMITED"
    http_status = 429

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        self.retry_after_s = max(1, retry_after_s)
        super().__init__(message, details={"retry_after_seconds": self.retry_after_s})


class WhatsAppNotConnected(AppError):
    error_code = "WHATSAPP_NOT_CONNECTED"
    http_status = 503


class DatabaseUnavailable(AppError):
    """The database could not be reached (or is shedding load): retry after a few seconds."""

    error_code = "DATABASE_UNAVAILABLE"
    http_status = 503


class IdempotencyKeyMismatch(AppError):
    error_code = "IDEMPOTENCY_KEY_MISMATCH"
    http_status = 422


class IdempotencyKeyInUse(AppError):
    error_code = "IDEMPOTENCY_KEY_IN_USE"
    http_status = 409


class BroadcastFinished(AppError):
    error_code = "BROADCAST_FINISHED"
    http_status = 409


class ProviderSetupFailed(AppError):
    """The provider refused, or did not answer, a step that setting up a session needs
    (registering our webhook, say); nothing was stored."""

    error_code = "PROVIDER_SETUP_FAILED"
    http_status = 502


class InvalidStatusTransition(AppError):
    """A write tried to move a status along an edge the status table does not have."""

    error_code = "INVALID_STATUS_TRANSITION"
    http_status = 409


class NotReady(AppError):
    """The service cannot serve yet: database unreachable, or its schema not at our head."""

    error_code = "NOT_READY"
    http_status = 503
