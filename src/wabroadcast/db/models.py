"""SQLAlchemy 2 typed models: the tables every face of wabroadcast shares.

Every table carries ``tenant_id`` (directly or through its session) so a later
shard-by-tenant step needs no redesign. Timestamps are always UTC; the
``UTCDateTime`` type keeps that true on SQLite, which stores no zone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def table_of(model: type[Base]) -> Table:
    """A model's table, for Core statements on hot paths (no ORM bookkeeping per row)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    api_key_prefix: Mapped[str] = mapped_column(String(16))
    default_region: Mapped[str] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WhatsAppSession(Base):
    """A tenant's WhatsApp number as seen through one provider, with its pacing state."""

    __tablename__ = "whatsapp_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    max_concurrency: Mapped[int] = mapped_column(Integer, default=1)
    rate_per_minute: Mapped[float | None] = mapped_column(Float, nullable=True)
    jitter_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    next_send_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Bumped on every slot lease taken, so an epoch names one lease of one session.
    lease_epoch_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    webhook_secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WhatsAppBroadcast(Base):
    """One message to many recipients; its counters mirror the recipients' statuses."""

    __tablename__ = "whatsapp_broadcasts"
    __table_args__ = (
        Index("ix_whatsapp_broadcasts_tenant_id_id", "tenant_id", "id"),
        Index("ix_whatsapp_broadcasts_tenant_id_status_id", "tenant_id", "status", "id"),
        Index("ix_whatsapp_broadcasts_tenant_id_created_at", "tenant_id", "created_at"),
        Index("ix_whatsapp_broadcasts_status_session_id", "status", "session_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    session_id: Mapped[str] = mapped_column(ForeignKey("whatsapp_sessions.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    message: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    connection_check: Mapped[str] = mapped_column(String(16))
    total_recipients: Mapped[int] = mapped_column(Integer)
    invalid_recipients_count: Mapped[int] = mapped_column(Integer, default=0)
    duplicates_removed: Mapped[int] = mapped_column(Integer, default=0)
    invalid_recipients: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    queued_count: Mapped[int] = mapped_column(Integer, default=0)
    sending_count: Mapped[int] = mapped_column(Integer, default=0)
    sent_count: Mapped[int] = mapped_column(Integer, default=0)
    delivered_count: Mapped[int] = mapped_column(Integer, default=0)
    read_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    cancelled_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


def _recent_activity_index(column: str) -> Index:
    """``(tenant_id, <column>)`` for the rows where that event happened.

    The metrics count sends, deliveries and failures of the last minutes per
    tenant with these. Partial, so the 100,000-row COPY of a new broadcast, whose
    rows all have the column NULL, adds no entries to them.
    """
    return Index(
        f"ix_whatsapp_broadcast_recipients_tenant_id_{column}",
        "tenant_id",
        column,
        postgresql_where=text(f"{column} IS NOT NULL"),
        sqlite_where=text(f"{column} IS NOT NULL"),
    )


class WhatsAppBroadcastRecipient(Base):
    """One recipient of one broadcast: what we were given, what we sent, what happened.

    This table takes 100,000 rows in one request, so it carries only the indexes
    its queries need and no foreign keys: per-row referential checks more than
    doubled the COPY time (measured). Rows are written only together with their
    broadcast, in its transaction, and ``tenant_id``/``session_id`` copy the
    broadcast's own, which keeps them consistent without the checks.
    """

    __tablename__ = "whatsapp_broadcast_recipients"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "phone"),
        Index(
            "ix_whatsapp_broadcast_recipients_broadcast_status_id", "broadcast_id", "status", "id"
        ),
        Index(
            "ix_whatsapp_broadcast_recipients_provider_message_id",
            "provider_message_id",
            postgresql_where=text("provider_message_id IS NOT NULL"),
            sqlite_where=text("provider_message_id IS NOT NULL"),
        ),
        _recent_activity_index("sent_at"),
        _recent_activity_index("delivered_at"),
        _recent_activity_index("failed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    broadcast_id: Mapped[int] = mapped_column(BigId)
    tenant_id: Mapped[int] = mapped_column(BigId)
    session_id: Mapped[str] = mapped_column(String(64))
    raw_input: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(16))
    lead_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_epoch: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    client_message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    provider_message_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SessionLease(Base):
    """One of a session's ``max_concurrency`` send slots, leased by one worker at a time.

    ``epoch`` fences writes: recipients claimed under a lease carry its epoch,
    and a result is recorded only where the epoch still matches.
    """

    __tablename__ = "session_leases"

    session_id: Mapped[str] = mapped_column(ForeignKey("whatsapp_sessions.id"), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigId)
    holder: Mapped[str | None] = mapped_column(String(64), nullable=True)
    epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class IdempotencyRequest(Base):
    """A client ``Idempotency-Key``: in flight, or the response it produced (kept 24 h)."""

    __tablename__ = "idempotency_requests"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    broadcast_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class SimulatorScenario(Base):
    """What the simulated WhatsApp of one session does; in the database so every process sees it."""

    __tablename__ = "simulator_scenarios"

    session_id: Mapped[str] = mapped_column(ForeignKey("whatsapp_sessions.id"), primary_key=True)
    connected: Mapped[bool] = mapped_column(Boolean, default=True)
    status_delay_ms: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    fail_numbers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    fail_rate: Mapped[float] = mapped_column(Float, default=0.0)
    deliver_after_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    in_flight_high_water_mark: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# The sends that make a later send with their client message id a repeat (answered
# as sent, not delivered again): not repeats themselves, and not refused by WhatsApp.
# A refused send (a failure, a disconnect, an account-level error) delivered nothing,
# so the next send with its id is delivered. One in flight, or whose caller died
# before its end was logged, counts as accepted: nothing may be delivered twice.
ORIGINAL_SEND = "NOT repeat AND (outcome IS NULL OR outcome = 'sent')"


class SimulatorSend(Base):
    """Every send the simulated WhatsApp received, written as it happens.

    Committed on its own, apart from the worker's transactions, so that a send
    survives a ``kill -9`` of its worker the way a real message that reached
    WhatsApp does.
    """

    __tablename__ = "simulator_sends"
    __table_args__ = (
        Index(
            "uq_simulator_sends_original_client_message_id",
            "session_id",
            "client_message_id",
            unique=True,
            postgresql_where=text(ORIGINAL_SEND),
            sqlite_where=text(ORIGINAL_SEND),
        ),
        Index(
            "ix_simulator_sends_receipt_due",
            "deliver_at",
            postgresql_where=text("receipt_sent_at IS NULL AND deliver_at IS NOT NULL"),
            sqlite_where=text("receipt_sent_at IS NULL AND deliver_at IS NOT NULL"),
        ),
        Index("ix_simulator_sends_session_id_id", "session_id", "id"),
        Index(
            "ix_simulator_sends_in_flight",
            "session_id",
            "started_at",
            postgresql_where=text("finished_at IS NULL"),
            sqlite_where=text("finished_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(16))
    client_message_id: Mapped[str] = mapped_column(String(64))
    provider_message_id: Mapped[str] = mapped_column(String(64))
    repeat: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deliver_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    receipt_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # When WhatsApp answers the send: its start plus the scenario's latency then. A
    # send whose caller died never logs its end, but is over by this time.
    answer_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DashboardSession(Base):
    """A browser signed in to the dashboard.

    The cookie carries a random token; only its SHA-256 is stored, so a leaked
    table signs nobody in. Kept in the database (not a signed cookie) so every
    API process behind a load balancer agrees on who is signed in and a sign
    out takes effect everywhere at once.
    """

    __tablename__ = "dashboard_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
