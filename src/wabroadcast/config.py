"""Typed settings, read once from the environment (prefix ``WABROADCAST_``).

One object carries every knob so that the API, the worker and the CLI agree on
them and tests can build an app with explicit values instead of patching env.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from wabroadcast.domain.error_rate import DEFAULT_PAUSE_ERROR_RATE
from wabroadcast.domain.replies import parse_duration_hours


class Settings(BaseSettings):
    """Runtime configuration; every field maps to ``WABROADCAST_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="WABROADCAST_", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///./wabroadcast.db",
        description=(
            "Database URL: sqlite:///FILE or postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
            "(taken as sqlite+aiosqlite:// and postgresql+psycopg://, also accepted as such)."
        ),
    )

    @field_validator("database_url")
    @classmethod
    def _async_database_url(cls, value: str) -> str:
        """The forms people type (sqlite:///x, postgresql://...) as the async drivers' URLs."""
        from wabroadcast.db.engine import async_url

        return async_url(value)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    default_region: str = Field(default="IL", min_length=2, max_length=2)
    default_provider: str = "simulator"
    max_recipients: int = Field(default=100_000, ge=1)
    max_message_chars: int = Field(default=4096, ge=1)
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description=(
            "Largest request body the JSON API (/api/...) reads, in bytes; a larger one is 413 "
            "PAYLOAD_TOO_LARGE, refused from its Content-Length or as soon as a chunked body "
            "passes it. The default holds 100,000 recipients with names of ordinary length."
        ),
    )
    connection_check_timeout_s: float = Field(default=5.0, gt=0)
    idempotency_window_s: int = Field(default=600, ge=1)
    idempotency_bucket_s: int = Field(default=300, ge=1)
    idempotency_key_ttl_s: int = Field(default=86_400, ge=60)
    idempotency_in_flight_timeout_s: int = Field(default=120, ge=1)
    max_attempts: int = Field(default=5, ge=1, le=100)
    retry_base_s: float = Field(default=2.0, gt=0)
    pause_error_rate: float = Field(
        default=DEFAULT_PAUSE_ERROR_RATE,
        gt=0,
        le=1,
        description=(
            "Share of a session's last 50 sends that may fail because the numbers cannot "
            "receive WhatsApp messages before its broadcasts pause (a session may set its own)."
        ),
    )
    retry_cap_s: float = Field(default=300.0, gt=0)
    lease_ttl_s: float = Field(default=15.0, gt=0)
    worker_poll_s: float = Field(default=0.5, gt=0)
    # Most recipients one session claims at once (shared by its slots); a slot
    # claims less when its sends are slow: about ``Tuning.claim_seconds`` of work.
    claim_batch: int = Field(default=1000, ge=1, le=10_000)
    disconnected_hold_s: float = Field(default=2.0, gt=0)
    metrics_cache_s: float = Field(
        default=10.0,
        ge=0,
        description="Seconds GET /api/whatsapp/metrics reuses a tenant's answer; 0: never.",
    )
    rate_limit_per_minute: int = Field(
        default=600,
        ge=0,
        description=(
            "JSON API requests a tenant (all its API keys together) may make per minute, as a "
            "token bucket refilled continuously; past it 429 RATE_LIMITED with Retry-After. "
            "0 turns the limit off."
        ),
    )
    signin_max_failures: int = Field(
        default=10,
        ge=0,
        description=(
            "Failed dashboard sign-ins one client address may make per "
            "WABROADCAST_SIGNIN_WINDOW_S before its attempts are answered 429; 0: no limit."
        ),
    )
    signin_window_s: int = Field(
        default=900,
        ge=1,
        description="Seconds in which an address regains all its sign-in attempts.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description=(
            "Fernet key that encrypts provider secrets at rest (`wabroadcast secret-key` makes "
            "one). Required with PostgreSQL; on SQLite one is kept in <database file>.key."
        ),
    )
    public_url: str | None = Field(
        default=None,
        description=(
            "The address at which providers reach this server (webhooks), e.g. "
            "https://wa.example.com. Default: the local serve address."
        ),
    )
    metrics_token: str | None = Field(
        default=None,
        min_length=16,
        description="When set, GET /metrics (Prometheus) requires Authorization: Bearer <token>.",
    )
    webhook_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=60,
        description="Seconds a CRM endpoint has to answer a webhook delivery; then it is retried.",
    )
    webhook_lease_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Seconds a worker holds a webhook delivery it is making; if the worker dies, "
            "another makes it after this."
        ),
    )
    reply_window_s: float = Field(
        default=72 * 3600,
        gt=0,
        validation_alias=AliasChoices("reply_window_s", "WABROADCAST_REPLY_WINDOW"),
        description=(
            "How long after a send a message from its number counts as a reply "
            "(WABROADCAST_REPLY_WINDOW: 72h, 90m, 3d, 3600s; a bare number is hours)."
        ),
    )

    @field_validator("reply_window_s", mode="before")
    @classmethod
    def _reply_window(cls, value: object) -> object:
        return parse_duration_hours(value)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, parsed from the environment on first use."""
    return Settings()
