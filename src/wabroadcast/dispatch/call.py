"""What one provider call of a slot produced: its log lines and metrics, each written once."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime

from wabroadcast.dispatch.repository.rows import Claimed, Result
from wabroadcast.domain.phones import mask_phone
from wabroadcast.observability import prometheus
from wabroadcast.observability.logging import SEND_TAG, get_logger
from wabroadcast.providers.base import OutgoingMessage, SendResult, SessionRef

log = get_logger("wabroadcast.dispatch")


def outgoing(
    items: Sequence[Claimed], on_whatsapp: frozenset[str] = frozenset()
) -> list[OutgoingMessage]:
    """The messages a provider call sends for these claimed recipients; ``on_whatsapp``
    are the phones a number check just found on WhatsApp."""
    if on_whatsapp:
        return [
            OutgoingMessage(
                i.phone, i.message, i.client_message_id, i.template, i.phone in on_whatsapp
            )
            for i in items
        ]
    return [OutgoingMessage(i.phone, i.message, i.client_message_id, i.template) for i in items]


class CallResults:
    """What one provider call of a slot produced so far: which positions are done, and
    their log lines (each written once, when its result is known) and metrics."""

    def __init__(
        self,
        session_id: str,
        ref: SessionRef,
        items: Sequence[Claimed],
        started_at: datetime,
        started: float,
    ) -> None:
        # Positions whose result is known already (reported during the call).
        self.reported: set[int] = set()
        self._ref = ref
        self._items = items
        self._started_at = started_at
        self._started = started
        self._counted: list[tuple[str, str | None, float | None]] = []
        self._logged = log.is_enabled_for(logging.INFO)
        # Bound only when info is logged: a thousand slots start a call at once.
        self._log = log.bind(session_id=session_id) if self._logged else log

    def note(self, position: int, answer: SendResult, result: Result) -> None:
        """The result of ``items[position]`` is known."""
        self.reported.add(position)
        item = self._items[position]
        due = None if item.due_at is None else (self._started_at - item.due_at).total_seconds()
        self._counted.append((answer.outcome.value, answer.error_code, due))
        if self._logged:
            self._log.info(
                f"{SEND_TAG} attempt",
                broadcast_id=item.broadcast_id,
                phone=mask_phone(item.phone),
                attempt=item.attempts,
                outcome=answer.outcome.value,
                status=result.status.value,
                error_code=answer.error_code,
                repeated=answer.repeated,
                latency_ms=round((time.monotonic() - self._started) * 1000, 1),
            )

    def count(self, per_send_s: float) -> None:
        """Count every result in the metrics, in one go (label lookups once per outcome,
        not per message), each taking ``per_send_s``."""
        prometheus.record_call(self._ref.provider, self._counted, per_send_s)
        self._counted = []
