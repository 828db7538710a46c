"""The simulator's own tables: its scenario per session and the log of every send.

They share the application's metadata (so migrations and ``alembic check`` see
them), but only the simulator reads or writes them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from wabroadcast.db.models import Base, BigId, UTCDateTime


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
    # The text WhatsApp was asked to deliver (None: a provider template was sent).
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deliver_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    receipt_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # When WhatsApp answers the send: its start plus the scenario's latency then. A
    # send whose caller died never logs its end, but is over by this time (and the
    # receipt pump ends it as accepted, ABANDONED_AFTER later).
    answer_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
