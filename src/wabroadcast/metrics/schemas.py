"""What the metrics endpoint and the per-minute chart answer."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

RECENT_WINDOW_S = 300


class TenantMetricsOut(BaseModel):
    """A tenant's sending right now, and in the five minutes up to ``generated_at``.

    The ``*_last_5m`` counts are events, each counted when it happened: a
    recipient sent four minutes ago and delivered one minute ago is in both
    ``sent_last_5m`` and ``delivered_last_5m``.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    pending_count: int = Field(
        ge=0, description="Recipients queued or sending in the tenant's active broadcasts."
    )
    sent_last_5m: int = Field(
        ge=0,
        description=(
            "Recipients WhatsApp accepted (sent_at) in (generated_at - 5 min, generated_at], "
            "whatever happened to them since (delivered, read, a late failure)."
        ),
    )
    failed_last_5m: int = Field(
        ge=0,
        description="Recipients that failed for good (failed_at) in the same window.",
    )
    delivered_last_5m: int = Field(
        ge=0,
        description="Recipients delivered (delivered_at; read ones included) in the same window.",
    )
    active_broadcasts: int = Field(
        ge=0, description="Broadcasts scheduled, queued, running or paused."
    )
    generated_at: datetime = Field(description="When these numbers were computed (UTC).")
    cached: bool = Field(
        description="True when this is an earlier answer, at most WABROADCAST_METRICS_CACHE_S old."
    )


class MinuteCount(BaseModel):
    """Sends and failures of one tenant in one minute ``[minute, minute + 1 min)``."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    minute: datetime
    sent: int = Field(ge=0)
    failed: int = Field(ge=0)
