"""Request and response bodies about sessions; secrets never appear in a response."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SESSION_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
SessionId = Annotated[str, StringConstraints(pattern=SESSION_ID_PATTERN)]


class SessionSettings(BaseModel):
    """How fast and how much a session may send. Fields left out keep their value (or the
    provider's default); the daily cap, warm-up, pause_error_rate and check_numbers given
    as null go back to the provider's preset (or the default)."""

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
    daily_cap: int | None = Field(
        default=None,
        ge=0,
        le=10_000_000,
        description="Sends per calendar day in the tenant's time zone; 0 = no cap. Never set: "
        "the provider's preset (WhatsApp Web gateways 1,500 after a warm-up; Cloud API "
        "its config.messaging_tier; simulator none). The rest of the day's sends wait "
        "(waiting_reason daily_cap) until the next day.",
    )
    warmup_days: int | None = Field(
        default=None,
        ge=0,
        le=365,
        description="Days of warm-up before the daily cap applies; 0 = none. Setting it (or "
        "warmup_start_cap) starts the warm-up today.",
    )
    warmup_start_cap: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description="The warm-up's cap on its first day.",
    )
    warmup_growth: float | None = Field(
        default=None,
        ge=1,
        le=10,
        description="The warm-up cap's factor per day: day n allows start cap × growth^n.",
    )
    pause_error_rate: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Share of recent sends failed for recipient reasons that pauses the "
        "session's broadcasts (default 0.2).",
    )
    check_numbers: bool | None = Field(
        default=None,
        description="Ask the provider whether each number is on WhatsApp before sending "
        "(default: the provider's).",
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
    daily_cap: int | None = Field(
        description="Sends per calendar day as set; 0 = no cap; null = the provider's preset."
    )
    warmup_days: int | None = Field(description="As set; null = the provider's preset.")
    warmup_start_cap: int | None = Field(description="As set; null = the provider's preset.")
    warmup_growth: float | None = Field(description="As set; null = the provider's preset.")
    warmup_started_at: datetime | None = Field(
        description="The warm-up's first day (null: the session's creation)."
    )
    cap_today: int | None = Field(
        description="Sends allowed today in the tenant's time zone (the daily cap, or the "
        "warm-up's cap of the day, presets included); null = no cap."
    )
    sent_today: int | None = Field(
        description="Sends started today against the cap; null when the session has no cap "
        "(they are not counted)."
    )
    pause_error_rate: float | None = Field(description="As set; null = the default 0.2.")
    check_numbers: bool | None = Field(description="As set; null = the provider's default.")
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
