"""The catalogue of everything a client can be told went wrong.

Each error carries its stable ``error_code``, its HTTP status, when a client
gets it, and whether the same request may succeed after a wait (``Retry-After``).
The envelope (``api.errors``), the OpenAPI error descriptions and the README's
error table are all made from ``CATALOGUE``, so they cannot drift apart.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    """An expected failure with a stable code; rendered as the JSON error envelope."""

    error_code: ClassVar[str] = "INTERNAL_ERROR"
    http_status: ClassVar[int] = 500
    when: ClassVar[str] = "a fault on our side: logged with its traceback, nothing revealed"
    # Whole seconds after which the same request may succeed; None: waiting does not help.
    retry_after_s: ClassVar[int | None] = None

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

    def retry_after(self) -> int | None:
        """The ``Retry-After`` this answer carries, if any."""
        return self.retry_after_s


# --- 4xx: what the client can fix ------------------------------------------------------


class NoRecipients(AppError):
    error_code = "NO_RECIPIENTS"
    http_status = 400
    when = "empty `recipients`"


class NoValidRecipients(AppError):
    error_code = "NO_VALID_RECIPIENTS"
    http_status = 400
    when = "every number invalid; `details` has the count, reasons with counts, 5 examples"


class AllRecipientsOptedOut(AppError):
    error_code = "ALL_RECIPIENTS_OPTED_OUT"
    http_status = 400
    when = (
        "every valid number has opted out; `details` has `opted_out_count` and the first 20 "
        "in `opted_out`"
    )


class WebhookMalformed(AppError):
    """A correctly signed webhook body that is not a document of the provider's."""

    error_code = "WEBHOOK_MALFORMED"
    http_status = 400
    when = "a webhook call that is correctly signed but not a body of its provider's"


class Unauthorized(AppError):
    error_code = "UNAUTHORIZED"
    http_status = 401
    when = "missing or unknown API key (or a rotated one past its grace period)"


class WebhookUnauthorized(AppError):
    """Missing or wrong signature, or an unknown session; the same answer for all."""

    error_code = "WEBHOOK_UNAUTHORIZED"
    http_status = 401
    when = "a webhook call with a missing or wrong signature, or for an unknown session"


class Forbidden(AppError):
    error_code = "FORBIDDEN"
    http_status = 403
    when = "a webhook subscription handshake whose token is no session's"


class NotFound(AppError):
    error_code = "NOT_FOUND"
    http_status = 404
    when = "no such route"


class BroadcastNotFound(NotFound):
    error_code = "BROADCAST_NOT_FOUND"
    when = "no such broadcast, or another tenant's"


class SessionNotFound(NotFound):
    error_code = "SESSION_NOT_FOUND"
    when = "no such session, or another tenant's"


class SimulatorNotAvailable(NotFound):
    error_code = "SIMULATOR_NOT_AVAILABLE"
    when = "a simulator route for a session of another provider"


class OptOutNotFound(NotFound):
    error_code = "OPT_OUT_NOT_FOUND"
    when = "the number is not on the tenant's opt-out list"


class ProviderNotFound(NotFound):
    error_code = "PROVIDER_NOT_FOUND"
    when = "a webhook for a provider this installation does not have"


class WebhookSubscriptionNotFound(NotFound):
    error_code = "WEBHOOK_SUBSCRIPTION_NOT_FOUND"
    when = "no such webhook subscription (or a deleted one, or another tenant's)"


class MethodNotAllowed(AppError):
    error_code = "METHOD_NOT_ALLOWED"
    http_status = 405
    when = "the route exists but not with this method; `Allow` lists the methods"


class NotAcceptable(AppError):
    error_code = "NOT_ACCEPTABLE"
    http_status = 406
    when = "an `Accept` header that excludes every format the route answers in"


class BroadcastFinished(AppError):
    error_code = "BROADCAST_FINISHED"
    http_status = 409
    when = (
        "cancelling, pausing or resuming a broadcast that already ended, or retrying the "
        "failed recipients of a cancelled one"
    )


class IdempotencyKeyInUse(AppError):
    error_code = "IDEMPOTENCY_KEY_IN_USE"
    http_status = 409
    when = "a request with the same `Idempotency-Key` is still being processed"
    retry_after_s = 1


class InvalidStatusTransition(AppError):
    """A write tried to move a status along an edge the status table does not have."""

    error_code = "INVALID_STATUS_TRANSITION"
    http_status = 409
    when = "a status change the status table does not allow"


class SessionExists(AppError):
    error_code = "SESSION_EXISTS"
    http_status = 409
    when = "creating a session with an id that is taken"


class SessionInUse(AppError):
    error_code = "SESSION_IN_USE"
    http_status = 409
    when = "deleting a session with a broadcast that is not finished"


class WebhookKeyInUse(AppError):
    """Another session already receives this provider's webhooks for the same key."""

    error_code = "WEBHOOK_KEY_IN_USE"
    http_status = 409
    when = "a number (webhook key) another session of the provider already has"


class SessionNotLinkable(AppError):
    """The session's provider is not linked by QR code (its own console connects it)."""

    error_code = "NOT_LINKABLE"
    http_status = 409
    when = "connecting or logging out a session that is not linked by QR code"


class TooManyWebhookSubscriptions(AppError):
    error_code = "TOO_MANY_WEBHOOK_SUBSCRIPTIONS"
    http_status = 409
    when = "a tenant with 20 webhook subscriptions adding another; delete one first"


class TooManyRecipients(AppError):
    error_code = "TOO_MANY_RECIPIENTS"
    http_status = 413
    when = "above `WABROADCAST_MAX_RECIPIENTS`"


class PayloadTooLarge(AppError):
    """The request body is larger than the server accepts (``WABROADCAST_MAX_BODY_BYTES``)."""

    error_code = "PAYLOAD_TOO_LARGE"
    http_status = 413
    when = (
        "a body over `WABROADCAST_MAX_BODY_BYTES` (a webhook's over 1 MiB), refused "
        "before it is read whole; `details.max_bytes`"
    )


class UnsupportedMediaType(AppError):
    error_code = "UNSUPPORTED_MEDIA_TYPE"
    http_status = 415
    when = "a body in a format the route does not take"


class ValidationFailed(AppError):
    error_code = "VALIDATION_ERROR"
    http_status = 422
    when = "bad body or parameter; `message` starts with the field, `details.errors` lists them"


class NoPhoneColumn(ValidationFailed):
    """A CSV file with no column headed or filled like phone numbers."""

    error_code = "NO_PHONE_COLUMN"
    when = "an uploaded CSV file with no phone column; `details.columns` lists the columns seen"


class CsvNotText(ValidationFailed):
    """An uploaded file that is neither UTF-8 nor UTF-16 (with its BOM) text."""

    error_code = "CSV_NOT_TEXT"
    when = "an uploaded CSV file that is not UTF-8 or UTF-16 text"


class MissingVariables(ValidationFailed):
    """A personal message whose fields some recipients lack, with ``strict_variables``."""

    error_code = "MISSING_VARIABLES"
    when = (
        "`strict_variables` and some recipients lack a field the message uses; "
        "`details.missing_variables` names them (count, 5 phones)"
    )


class IdempotencyKeyMismatch(AppError):
    error_code = "IDEMPOTENCY_KEY_MISMATCH"
    http_status = 422
    when = "the `Idempotency-Key` was used with another body"


class RateLimited(AppError):
    """Too many requests from one caller; ``retry_after_s`` whole seconds until the next fits."""

    error_code = "RATE_LIMITED"
    http_status = 429
    when = (
        "over `WABROADCAST_RATE_LIMIT_PER_MINUTE` requests of one tenant, or too many failed "
        "dashboard sign-ins from one address"
    )
    retry_after_s = 1

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        self.wait_s = max(1, retry_after_s)
        super().__init__(message, details={"retry_after_seconds": self.wait_s})

    def retry_after(self) -> int:
        return self.wait_s


# --- 5xx: what is not the client's doing ------------------------------------------------


class InternalError(AppError):
    """An unexpected exception; only ever rendered, never raised."""


class ProviderSetupFailed(AppError):
    """The provider refused, or did not answer, a step that setting up a session needs
    (registering our webhook, say); nothing was stored."""

    error_code = "PROVIDER_SETUP_FAILED"
    http_status = 502
    when = (
        "the provider refused or did not answer a step that setting a session up needs "
        "(Evolution's webhook registration, the gateway's start); nothing stored"
    )


class WhatsAppNotConnected(AppError):
    error_code = "WHATSAPP_NOT_CONNECTED"
    http_status = 503
    when = "the session is not connected; `message` in Hebrew, `message_en` in English"


class DatabaseUnavailable(AppError):
    """The database could not be reached (or is shedding load): retry after a few seconds."""

    error_code = "DATABASE_UNAVAILABLE"
    http_status = 503
    when = (
        "the database cannot be reached right now (connection refused, unavailable, shedding load)"
    )
    retry_after_s = 5


class NotReady(AppError):
    """The service cannot serve yet: database unreachable, or its schema not at our head."""

    error_code = "NOT_READY"
    http_status = 503
    when = "`GET /readyz`: database unreachable or slow, or its schema not at our migration head"


# Every error the JSON API can answer with, in the order the docs list them.
CATALOGUE: tuple[type[AppError], ...] = (
    NoRecipients,
    NoValidRecipients,
    AllRecipientsOptedOut,
    WebhookMalformed,
    Unauthorized,
    WebhookUnauthorized,
    Forbidden,
    NotFound,
    BroadcastNotFound,
    SessionNotFound,
    SimulatorNotAvailable,
    OptOutNotFound,
    ProviderNotFound,
    WebhookSubscriptionNotFound,
    MethodNotAllowed,
    NotAcceptable,
    BroadcastFinished,
    IdempotencyKeyInUse,
    InvalidStatusTransition,
    SessionExists,
    SessionInUse,
    WebhookKeyInUse,
    SessionNotLinkable,
    TooManyWebhookSubscriptions,
    TooManyRecipients,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    NoPhoneColumn,
    CsvNotText,
    MissingVariables,
    IdempotencyKeyMismatch,
    RateLimited,
    InternalError,
    ProviderSetupFailed,
    WhatsAppNotConnected,
    DatabaseUnavailable,
    NotReady,
)


def for_http_status(status: int) -> type[AppError] | None:
    """The catalogue's generic error for a bare HTTP status (the framework's own answers)."""
    generic: dict[int, type[AppError]] = {
        401: Unauthorized,
        403: Forbidden,
        404: NotFound,
        405: MethodNotAllowed,
        406: NotAcceptable,
        413: PayloadTooLarge,
        415: UnsupportedMediaType,
        422: ValidationFailed,
        429: RateLimited,
    }
    return generic.get(status)
