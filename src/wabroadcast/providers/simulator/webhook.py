"""How a call to the simulator's webhook proves where it came from, and what it may carry.

Webhooks are called by providers, not tenants, so they never carry an API key.
The simulator signs the raw body with its session's ``webhook_secret`` (the
same shape as Meta's ``X-Hub-Signature-256``), and the body is checked only
after the signature: nothing an outsider sends is parsed, let alone written.
This module is pure (no I/O), so the scheme can be tested exhaustively and
each provider that comes later brings its own module of the same kind.
"""

from __future__ import annotations

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
    InboundMessage,
    Receipt,
    ReceiptStatus,
    SessionRef,
    WebhookBodyInvalid,
)
from wabroadcast.providers.common import (
    EARLIEST_TIME,
    LATEST_TIME,
    OWN_SESSION_HEADER,
    OWN_SIGNATURE_HEADER,
    check_own_signature,
    own_routing_keys,
    own_session_id,
    sha256_signature,
)

SESSION_HEADER = OWN_SESSION_HEADER
SIGNATURE_HEADER = OWN_SIGNATURE_HEADER
MAX_RECEIPTS = 1000


def _time_in_range(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("at is out of range") from None
    # Nothing real happens outside this range, and the extremes of the calendar
    # overflow when converted to UTC for storage.
    if not EARLIEST_TIME <= utc <= LATEST_TIME:
        raise ValueError("at is out of range (2000-01-01 to 2200-01-01 UTC)")
    return value


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
        return _time_in_range(value)

    @model_validator(mode="after")
    def _errors_only_on_failed(self) -> Self:
        if self.status != "failed" and (
            self.error_code is not None or self.error_message is not None
        ):
            raise ValueError("error_code and error_message belong to failed receipts only")
        return self


class SimulatorInboundIn(BaseModel):
    """A message someone sent to the simulated number, as the simulator posts it."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    message_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    from_phone: Annotated[str, StringConstraints(pattern=r"^\+?\d{6,15}$")] = Field(
        alias="from", description="The sender's number, digits with an optional +."
    )
    text: Annotated[str, StringConstraints(max_length=4096)] | None = None
    at: AwareDatetime

    @field_validator("text", mode="before")
    @classmethod
    def _text_without_nul(cls, value: object) -> object:
        return value.replace("\x00", "") if isinstance(value, str) else value

    @field_validator("at")
    @classmethod
    def _in_range(cls, value: datetime) -> datetime:
        return _time_in_range(value)


class SimulatorWebhookBody(BaseModel):
    """The document the simulator posts: up to 1000 receipts, and the messages people
    sent to the number (none unless asked, ``POST /api/whatsapp/simulator/inbound``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    receipts: list[SimulatorReceiptIn] = Field(max_length=MAX_RECEIPTS)
    messages: list[SimulatorInboundIn] = Field(default_factory=list, max_length=MAX_RECEIPTS)


# The ``X-Wabroadcast-Signature`` value for a body: ``sha256=<hex HMAC-SHA256>``.
sign_simulator_webhook = sha256_signature
session_id_from_headers = own_session_id
routing_keys = own_routing_keys


def parse(session: SessionRef, headers: Mapping[str, str], body: bytes) -> list[Receipt]:
    """``parse_simulator_webhook`` with the session's webhook secret."""
    return parse_simulator_webhook(session.webhook_secret, headers, body)


verify_simulator_signature = check_own_signature


def inbound(session: SessionRef, headers: Mapping[str, str], body: bytes) -> list[InboundMessage]:
    """The messages a simulator call carries (the call is already authenticated by
    ``parse``, which has refused a body that is not a document of ours)."""
    try:
        document = SimulatorWebhookBody.model_validate_json(body)
    except ValidationError:
        return []
    return [
        InboundMessage(
            provider_message_id=item.message_id,
            from_phone="+" + item.from_phone.removeprefix("+"),
            text=item.text,
            at=item.at,
        )
        for item in document.messages
    ]


def inbound_body(message_id: str, from_phone: str, text: str | None, at: datetime) -> bytes:
    """The JSON document the simulator posts for one message sent to its number."""
    document = SimulatorWebhookBody.model_validate(
        {
            "receipts": [],
            "messages": [{"message_id": message_id, "from": from_phone, "text": text, "at": at}],
        }
    )
    return document.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8")


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
