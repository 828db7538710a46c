"""Request and response bodies about sessions; secrets never appear in a response."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SESSION_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
SessionId = Annotated[str, StringConstraints(pattern=SESSION_ID_PATTERN)]


class SessionSettings(BaseModel):
    """How fast a session may send; unset fields keep their value (or the provider's default)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_concurrency: int | None = Field(
        default=None, ge=1, le=64, description="Sends in flight at once."
    )
    rate_per_minute: float | None = Field(
        default=None, ge=0, le=60_000, description="Messages per minute; 0 = not paced."
    )
    jitter_ms: int | None = Field(
        default=None, ge=0, le=600_000, description="Random extra gap before each send, 0..J ms."
    )


class SessionCreate(SessionSettings):
    session_id: SessionId | None = Field(
        default=None,
        description="Unique in the deployment; a tenant's first is business_<tenant_id>, "
        "later ones are generated when omitted.",
    )
    provider: str = Field(max_length=32, description="A provider kind, e.g. cloud_api.")
    config: dict[str, Any] = Field(
        default_factory=dict, description="The provider's config; secrets are write-only."
    )
    default: bool | None = Field(
        default=None, description="Make this the tenant's default session (its first always is)."
    )


class SessionUpdate(SessionSettings):
    config: dict[str, Any] | None = Field(
        default=None,
        description="Fields to change; secret fields left out keep their stored value.",
    )
    default: Literal[True] | None = Field(
        default=None, description="true: make this the tenant's default session."
    )


class SessionOut(BaseModel):
    session_id: str
    provider: str
    default: bool
    config: dict[str, Any] = Field(
        description="The provider config; each secret shows as … and its last 4 characters."
    )
    max_concurrency: int
    rate_per_minute: float = Field(description="Messages per minute; 0 = not paced.")
    jitter_ms: int
    pace_is_default: bool
    webhook_url: str | None = Field(description="Paste this into the provider's console.")
    webhook_url_warning: str | None
    created_at: datetime


class SessionsPage(BaseModel):
    items: list[SessionOut]
    next_cursor: str | None


class SessionStatusOut(BaseModel):
    session_id: str
    provider: str
    state: Literal["connected", "disconnected", "unknown"]
    connected: bool
    detail: str | None = Field(description="Why the state is what it is, when known.")
    checked_at: datetime
    max_concurrency: int
    rate_per_minute: float = Field(description="Messages per minute; 0 = not paced.")
    jitter_ms: int = Field(description="Random extra gap before each send, up to this many ms.")
    pace_is_default: bool = Field(description="True when the pace is the provider's default.")


class QrCode(BaseModel):
    text: str = Field(description="What the QR code encodes (render it to scan it).")
    png_data_url: str | None = Field(description="The QR code as a PNG data URL.")


class LinkOut(BaseModel):
    """Where linking the session's phone stands (providers that link by QR code)."""

    session_id: str
    state: Literal["connected", "connecting", "qr", "logged_out", "closed", "not_started"]
    qr: QrCode | None = Field(description="While state is qr: scan it in WhatsApp, Linked devices.")
    me: str | None = Field(description="The linked WhatsApp account, once connected.")
    detail: str | None
