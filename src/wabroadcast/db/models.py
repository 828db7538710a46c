"""SQLAlchemy 2 typed models: the tables every face of wabroadcast shares.

Every table carries ``tenant_id`` (directly or through its session) so a later
shard-by-tenant step needs no redesign. Timestamps are always UTC; the
``UTCDateTime`` type keeps that true on SQLite, which stores no zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
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
    # The key a rotation replaced, accepted until ``previous_key_expires_at``.
    previous_api_key_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    previous_api_key_prefix: Mapped[str | None] = mapped_column(String(16))
    previous_key_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    key_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Inbound texts that opt their sender out (None: ``domain.stop_words.DEFAULT_STOP_WORDS``).
    stop_words: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # IANA zone of the tenant's calendar days (daily caps) and of its quiet hours.
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    # ``HH:MM-HH:MM`` in which no send starts (None: none).
    quiet_hours: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Sent once to a number that opts out by a stop word (None: no reply).
    opt_out_reply: Mapped[str | None] = mapped_column(Text, nullable=True)


class RateLimitBucket(Base):
    """A token bucket shared by every API process: who (``bucket_key``) has how many left.

    ``updated_at`` is seconds since the epoch, so refilling is arithmetic in one
    UPDATE on every backend.
    """

    __tablename__ = "rate_limit_buckets"

    bucket_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float(precision=53))
    updated_at: Mapped[float] = mapped_column(Float(precision=53), index=True)


class WhatsAppSession(Base):
    """A tenant's WhatsApp number as seen through one provider, with its pacing state.

    ``config`` holds the provider config's plain fields; its secret fields are in
    ``secret_config``, one Fernet token (never readable without the key).
    ``webhook_key`` is what the provider's webhooks name the session by (its id,
    Meta's phone number id...), unique per provider.
    """

    __tablename__ = "whatsapp_sessions"
    __table_args__ = (
        Index("uq_whatsapp_sessions_provider_webhook_key", "provider", "webhook_key", unique=True),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secret_config: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    max_concurrency: Mapped[int] = mapped_column(Integer, default=1)
    rate_per_minute: Mapped[float | None] = mapped_column(Float, nullable=True)
    jitter_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    next_send_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Sends per calendar day (None: the provider's preset; 0: no cap) and the warm-up
    # ramp from ``warmup_start_cap``, times ``warmup_growth`` a day, for ``warmup_days``.
    daily_cap: Mapped[int | None] = mapped_column(Integer, nullable=True)
    warmup_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    warmup_start_cap: Mapped[int | None] = mapped_column(Integer, nullable=True)
    warmup_growth: Mapped[float | None] = mapped_column(Float, nullable=True)
    warmup_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Share of the last sends failed for recipient reasons that pauses (None: default).
    pause_error_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Ask the provider whether a number is on WhatsApp before sending (None: its default).
    check_numbers: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    # Bumped on every slot lease taken, so an epoch names one lease of one session.
    lease_epoch_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    webhook_secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Deleted sessions stay for their broadcasts' history; their id is not reused.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


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
    # A provider template to send instead of the text, where the provider has them.
    template: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    connection_check: Mapped[str] = mapped_column(String(16))
    total_recipients: Mapped[int] = mapped_column(Integer)
    invalid_recipients_count: Mapped[int] = mapped_column(Integer, default=0)
    duplicates_removed: Mapped[int] = mapped_column(Integer, default=0)
    invalid_recipients: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Fields a personal message uses that some recipients lack (None: none lacking).
    missing_variables: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    queued_count: Mapped[int] = mapped_column(Integer, default=0)
    sending_count: Mapped[int] = mapped_column(Integer, default=0)
    sent_count: Mapped[int] = mapped_column(Integer, default=0)
    delivered_count: Mapped[int] = mapped_column(Integer, default=0)
    read_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    cancelled_count: Mapped[int] = mapped_column(Integer, default=0)
    # Queued recipients whose number opted out before their send.
    skipped_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Numbers left out at creation because they had opted out (the first 20 listed).
    opted_out_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    opted_out: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # Recipients who wrote back within the reply window of their send.
    reply_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Quiet hours of this broadcast (None: the tenant's; ``off``: none) and whose
    # zone they are read in: ``tenant`` (None) or ``recipient`` (each one's country).
    quiet_hours: Mapped[str | None] = mapped_column(String(16), nullable=True)
    quiet_hours_zone: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When a scheduled broadcast is queued (None: at once).
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
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
        # A tenant's sends to a number, for attributing its replies.
        Index(
            "ix_whatsapp_broadcast_recipients_tenant_id_phone_sent_at",
            "tenant_id",
            "phone",
            "sent_at",
            postgresql_where=text("sent_at IS NOT NULL"),
            sqlite_where=text("sent_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    broadcast_id: Mapped[int] = mapped_column(BigId)
    tenant_id: Mapped[int] = mapped_column(BigId)
    session_id: Mapped[str] = mapped_column(String(64))
    raw_input: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(16))
    lead_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # This recipient's own text when the message is personal (None: the broadcast's text).
    rendered_message: Mapped[str | None] = mapped_column(Text, nullable=True)
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
    # The first message the number sent within the reply window of this send.
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reply_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The recipient's IANA zone, only for broadcasts with quiet hours in recipients' zones.
    time_zone: Mapped[str | None] = mapped_column(String(64), nullable=True)
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


class PendingReceipt(Base):
    """A receipt whose message we do not know yet, kept to apply once its send is recorded.

    Providers report fast: a "delivered" can overtake the worker's record of the
    send it is about (results are written in batches), and a provider whose
    webhook was answered 200 does not send it again.
    """

    __tablename__ = "pending_receipts"
    __table_args__ = (
        Index(
            "ix_pending_receipts_session_id_provider_message_id",
            "session_id",
            "provider_message_id",
        ),
        Index("ix_pending_receipts_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(64))
    provider_message_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class InboundMessageRow(Base):
    """A message someone sent to one of our sessions' numbers, as its provider reported it.

    Kept for reply tracking and opt-outs; a provider's repeat of the same message is
    stored once (unique per session and provider message id).
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (
        Index(
            "uq_inbound_messages_session_id_provider_message_id",
            "session_id",
            "provider_message_id",
            unique=True,
        ),
        Index("ix_inbound_messages_tenant_id_from_phone", "tenant_id", "from_phone"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(BigId)
    session_id: Mapped[str] = mapped_column(String(64))
    provider_message_id: Mapped[str] = mapped_column(String(128))
    from_phone: Mapped[str] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OptOut(Base):
    """A number (E.164) a tenant must not message: no new broadcast queues it.

    ``source`` says how it came: ``api``, ``import`` or ``inbound`` (a stop word).
    """

    __tablename__ = "whatsapp_opt_outs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "phone"),
        Index("ix_whatsapp_opt_outs_tenant_id_id", "tenant_id", "id"),
        Index(
            "ix_whatsapp_opt_outs_reply_status",
            "reply_status",
            postgresql_where=text("reply_status = 'due'"),
            sqlite_where=text("reply_status = 'due'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    phone: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The session a stop word came through, and its one confirmation reply:
    # ``due``, ``sending`` (tried once, never again), ``sent`` or ``failed``.
    session_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reply_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SessionDailySends(Base):
    """How many sends a session started on one calendar day (the tenant's zone): the
    counter every worker reserves from, under its row lock, before claiming."""

    __tablename__ = "session_daily_sends"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigId)
    sends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class NumberCheck(Base):
    """What a provider answered about a number being on WhatsApp, per tenant; trusted
    for 30 days."""

    __tablename__ = "number_checks"

    tenant_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    phone: Mapped[str] = mapped_column(String(16), primary_key=True)
    on_whatsapp: Mapped[bool] = mapped_column(Boolean)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime())


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


class WebhookSubscription(Base):
    """A tenant's CRM endpoint that wants some of our events, signed with its secret.

    ``secret`` is one Fernet token (see ``crypto``): the signing secret is shown
    once, when the subscription is made, and never readable from the database.
    """

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (Index("ix_webhook_subscriptions_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Deleted subscriptions stay for their deliveries' history; nothing more is owed them.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebhookSubscriptionEvent(Base):
    """Which live subscription of a tenant wants which event: the one indexed lookup an
    outbox write makes (no row, no write) on the dispatch path."""

    __tablename__ = "webhook_subscription_events"

    tenant_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_subscriptions.id"), primary_key=True
    )


class WebhookDelivery(Base):
    """The outbox: one event owed to one subscription, written in the transaction of the
    change it reports, then delivered (and retried) by a worker under a lease.

    ``event_id`` names the event (the same for every subscription and every attempt);
    deliveries of one broadcast to one subscription go out in ``id`` order.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_webhook_deliveries_pending_chain",
            "subscription_id",
            "broadcast_id",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_subscription_id_id", "subscription_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(BigId)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscriptions.id"))
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(40))
    broadcast_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # pending, delivered, failed (given up) or cancelled (its subscription deleted).
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookDeliveryAttempt(Base):
    """One try of a delivery: the receiver's status code, or why there was none."""

    __tablename__ = "webhook_delivery_attempts"
    __table_args__ = (Index("ix_webhook_delivery_attempts_delivery_id_id", "delivery_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"))
    tenant_id: Mapped[int] = mapped_column(BigId)
    attempt: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
