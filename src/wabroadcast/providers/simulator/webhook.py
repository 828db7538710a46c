"""How a call to the simulator's webhook proves where it came from, and what it may carry.

Webhooks are called by providers, not tenants, so they never carry an API key.
The simulator signs the raw body with its session's ``webhook_secret`` (the
same shape as Meta's ``X-Hub-Signature-256``), and the body is checked only
after the signature: nothing an outsider sends is parsed, let alone written.
This module is pure (no I/O), so the scheme can be tested exhaustively and
each provider that comes later brings its own module of the same kind.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from wabroadcast.providers.base import (
    Receipt,
    ReceiptStatus,
    SessionRef,
    WebhookBodyInvalid,
    WebhookSignatureInvalid,
)

SESSION_HEADER = "X-Wabroadcast-Session"
SIGNATURE_HEADER = "X-Wabroadcast-Signature"
SIGNATURE_PREFIX = "sha256="
MAX_RECEIPTS = 1000
# Receipt times outside this range are refused: nothing real happens then, and the
# extremes of the calendar overflow when converted to UTC for storage.
EARLIEST_AT = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_AT = datetime(2200, 1, 1, tzinfo=UTC)


class SimulatorReceiptIn(BaseModel):
    """One receipt as the simulator posts it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    provider_message_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    status: Literal["delivered", "read", "failed"]
    at: AwareDatetime = Field(description="ISO-8601 with a zone, e.g. 2026-11-28T12:00:02Z.")
    error_code: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    error_message: Annotated[str, StringConstraints(max_length=1000)] | None = None

    @field_validator("provider_message_id", "error_code", "error_message", mode="before")
    @classmethod
    def _without_nul(cls, value: object) -> object:
        # PostgreSQL text cannot hold NUL; stripped here as the Cloud API parser does
        # (a code or id that was nothing but NUL is then empty, and refused as such).
        return value.replace("\x00", "") if isinstance(value, str) else value

    @field_validator("at")
    @classmethod
    def _in_range(cls, value: datetime) -> datetime:
        try:
            utc = value.astimezone(UTC)
        except OverflowError:
            raise ValueError("at is out of range") from None
        if not EARLIEST_AT <= utc <= LATEST_AT:
            raise ValueError("at is out of range (2000-01-01 to 2200-01-01 UTC)")
        return value

    @model_validator(mode="after")
    def _errors_only_on_failed(self) -> Self:
        if self.status != "failed" and (
            self.error_code is not None or self.error_message is not None
        ):
            raise ValueError("error_code and error_message belong to failed receipts only")
        return self


class SimulatorWebhookBody(BaseModel):
    """The document the simulator posts: up to 1000 receipts."""

    model_config = ConfigDict(extra="forbid", strict=True)

    receipts: list[SimulatorReceiptIn] = Field(max_length=MAX_RECEIPTS)


def sign_simulator_webhook(secret: str, body: bytes) -> str:
    """The ``X-Wabroadcast-Signature`` value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name, from any mapping (Starlette's or a plain dict)."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None


def session_id_from_headers(headers: Mapping[str, str]) -> str | None:
    """The session a simulator webhook names, or None when the header is absent or empty."""
    value = _header(headers, SESSION_HEADER)
    if value is None or not value.strip():
        return None
    return value.strip()


def routing_keys(headers: Mapping[str, str], body: bytes, path_key: str | None) -> list[str]:
    """The session a call names in its header (a simulator session's webhook key is its id)."""
    session_id = session_id_from_headers(headers)
    return [] if session_id is None else [session_id]


def parse(session: SessionRef, headers: Mapping[str, str], body: bytes) -> list[Receipt]:
    """``parse_simulator_webhook`` with the session's webhook secret."""
    return parse_simulator_webhook(session.webhook_secret, headers, body)


def verify_simulator_signature(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Raise ``WebhookSignatureInvalid`` unless the signature header matches ``body``."""
    given = _header(headers, SIGNATURE_HEADER)
    if given is None:
        raise WebhookSignatureInvalid(f"missing {SIGNATURE_HEADER} header")
    expected = sign_simulator_webhook(secret, body)
    # Compared as bytes so that a non-ASCII header is a mismatch, not a TypeError.
    if not hmac.compare_digest(given.strip().encode("utf-8"), expected.encode("ascii")):
        raise WebhookSignatureInvalid("signature does not match the body")


def parse_simulator_webhook(secret: str, headers: Mapping[str, str], body: bytes) -> list[Receipt]:
    """Authenticate a simulator webhook by its signature, then decode its receipts.

    Raises ``WebhookSignatureInvalid`` (a ``WebhookRejected``) before looking at
    the body when the signature is missing or wrong, and ``WebhookBodyInvalid``
    when a correctly signed body is not a valid receipts document.
    """
    verify_simulator_signature(secret, headers, body)
    try:
        document = SimulatorWebhookBody.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
        where = ".".join(str(part) for part in first.get("loc", ())) or "body"
        raise WebhookBodyInvalid(f"{where}: {first.get('msg', 'invalid')}") from exc
    return [
        Receipt(
            provider_message_id=item.provider_message_id,
            status=ReceiptStatus(item.status),
            at=item.at,
            error_code=item.error_code,
            error_message=item.error_message,
        )
        for item in document.receipts
    ]


def receipts_body(receipts: list[Receipt]) -> bytes:
    """The JSON document for ``receipts``, as the simulator would post it."""
    document = SimulatorWebhookBody.model_validate(
        {
            "receipts": [
                {
                    "provider_message_id": r.provider_message_id,
                    "status": r.status.value,
                    "at": r.at,
                    "error_code": r.error_code,
                    "error_message": r.error_message,
                }
                for r in receipts
            ]
        }
    )
    return document.model_dump_json(exclude_none=True).encode("utf-8")
