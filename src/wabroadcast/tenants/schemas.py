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
    rate_per_minute: float = Field(description="Messages per minute; 0 = not paced.")
    jitter_ms: int = Field(description="Random extra gap before each send, up to this many ms.")
    pace_is_default: bool = Field(description="True when the pace is the provider's default.")
