"""Response bodies about sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class SessionStatusOut(BaseModel):
    session_id: str
    provider: str
    state: Literal["connected", "disconnected", "unknown"]
    connected: bool
    detail: str | None = Field(description="Why the state is what it is, when known.")
    checked_at: datetime
    max_concurrency: int
    rate_per_minute: float | None = Field(description="null = the provider's default pace.")
    jitter_ms: int | None
