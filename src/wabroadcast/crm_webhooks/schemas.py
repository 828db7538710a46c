"""Request and response bodies of webhook subscriptions; a secret is shown only once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from wabroadcast.crm_webhooks.events import DeliveryStatus, EventType

MAX_URL_CHARS = 2000


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=MAX_URL_CHARS,
        description="Where events are POSTed: an http(s) URL of the CRM.",
        examples=["https://crm.example.com/hooks/wabroadcast"],
    )
    events: list[EventType] = Field(
        min_length=1,
        max_length=len(EventType),
        description="The events to send there.",
        examples=[["broadcast.completed", "broadcast.partial", "recipient.failed"]],
    )
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        description="The signing secret; one is generated (and shown once) when omitted.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        try:
            url = httpx.URL(value)
        except (httpx.InvalidURL, TypeError) as exc:
            raise ValueError("not a URL") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @field_validator("events")
    @classmethod
    def _no_repeats(cls, value: list[EventType]) -> list[EventType]:
        return sorted(set(value), key=list(EventType).index)


class SubscriptionOut(BaseModel):
    id: int
    url: str
    events: list[EventType]
    created_at: datetime


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(
        description="Signs every delivery (X-Wabroadcast-Signature). Shown only now: keep it."
    )


class SubscriptionsList(BaseModel):
    items: list[SubscriptionOut]


class AttemptOut(BaseModel):
    attempt: int
    attempted_at: datetime
    status_code: int | None = Field(description="The receiver's answer; null: no answer.")
    error: str | None = Field(description="Why the attempt failed (null: it succeeded).")
    duration_ms: int | None


class DeliveryOut(BaseModel):
    id: int
    event_id: str = Field(description="The same on every attempt: deduplicate by it.")
    event_type: EventType
    broadcast_id: int | None
    data: dict[str, Any]
    status: DeliveryStatus = Field(
        description="pending, delivered, failed (given up after 24 h) or cancelled."
    )
    attempts_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    attempts: list[AttemptOut]


class DeliveriesPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None
