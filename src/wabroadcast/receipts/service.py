"""Receipts: what the provider later tells us about a message we sent (delivered, read, failed).

Receipts arrive late, repeated and out of order, from webhooks and from
providers' own passes, so applying one must be safe in any order and any number of
times. The rules are one pure function (``apply_receipt``) over a recipient's
receipt-owned columns: a status moves only along an edge of
``domain.status`` (never backwards), and timestamps keep the earliest evidence
(a message is delivered no later than it is read), which makes the final
status and ``delivered_at``/``read_at`` the same whatever order receipts come
in. Broadcast counters move in the same transaction as the recipient rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.broadcasts.repository.counts import resettle, shift_counts
from wabroadcast.crm_webhooks.outbox import FailedRecipient, Outbox
from wabroadcast.domain.phones import mask_phone
from wabroadcast.domain.status import RecipientStatus, can_transition
from wabroadcast.observability.logging import BROADCAST_TAG, SEND_TAG, get_logger
from wabroadcast.providers.base import (
    Receipt,
    ReceiptStatus,
)
from wabroadcast.receipts.repository import ReceiptRepository, RecipientRow, RecipientWrite

if TYPE_CHECKING:
    pass

log = get_logger("wabroadcast.receipts")

_R = RecipientStatus

# A provider that reports a failure without saying why still leaves a row that explains itself.
DEFAULT_FAILED_CODE = "DELIVERY_FAILED"
DEFAULT_FAILED_MESSAGE = "The provider reported that the message was not delivered"
# Statuses that already imply the message was delivered (resp. read): a receipt
# that arrives for them may only make the matching timestamp earlier.
_DELIVERED_OR_LATER = frozenset({_R.DELIVERED, _R.READ})
UNKNOWN_IDS_LOGGED = 5


# --- the rules (pure) --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecipientState:
    """The columns of one recipient that receipts may change."""

    status: RecipientStatus
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    failed_at: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None


def _earliest(current: datetime | None, at: datetime) -> datetime:
    return at if current is None or at < current else current


def apply_receipt(state: RecipientState, receipt: Receipt) -> RecipientState:
    """The state after ``receipt``; ``state`` itself when the receipt changes nothing.

    - delivered: moves the status where the status table allows; on a
      delivered or read row it may only fill or make ``delivered_at`` earlier.
    - read: moves to read where allowed and sets ``delivered_at`` too if it is
      empty or later (Meta omits "delivered" when both happen together).
    - failed: a late failure where allowed (e.g. after sent), with the
      provider's error; ignored once the message is delivered, read or failed.
    A failed row that a delivered/read receipt proves arrived keeps its error
    fields: only the status and timestamps change.
    """
    new = _next_state(state, receipt)
    return state if new == state else new


def _next_state(state: RecipientState, receipt: Receipt) -> RecipientState:
    status, at = state.status, receipt.at
    if receipt.status is ReceiptStatus.DELIVERED:
        if can_transition(status, _R.DELIVERED):
            return replace(
                state, status=_R.DELIVERED, delivered_at=_earliest(state.delivered_at, at)
            )
        if status in _DELIVERED_OR_LATER:
            return replace(state, delivered_at=_earliest(state.delivered_at, at))
        return state
    if receipt.status is ReceiptStatus.READ:
        if can_transition(status, _R.READ) or status is _R.READ:
            return replace(
                state,
                status=_R.READ,
                read_at=_earliest(state.read_at, at),
                delivered_at=_earliest(state.delivered_at, at),
            )
        return state
    if can_transition(status, _R.FAILED):
        return replace(
            state,
            status=_R.FAILED,
            failed_at=at,
            error_code=receipt.error_code or DEFAULT_FAILED_CODE,
            error_message=receipt.error_message or DEFAULT_FAILED_MESSAGE,
        )
    return state


# --- applying a batch ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """Per receipt: it changed a recipient, it changed nothing, or no recipient has its id."""

    applied: int = 0
    ignored: int = 0
    unknown: int = 0

    def __add__(self, other: ApplyResult) -> ApplyResult:
        return ApplyResult(
            self.applied + other.applied, self.ignored + other.ignored, self.unknown + other.unknown
        )


def _state_of(row: RecipientRow) -> RecipientState:
    return RecipientState(
        status=RecipientStatus(row.status),
        delivered_at=row.delivered_at,
        read_at=row.read_at,
        failed_at=row.failed_at,
        error_code=row.error_code,
        error_message=row.error_message,
    )


@dataclass(frozen=True, slots=True)
class _Applied:
    row: RecipientRow
    receipt: Receipt
    status: RecipientStatus


async def apply_receipts(
    session: AsyncSession,
    session_id: str,
    receipts: Sequence[Receipt],
    at: datetime,
    unknown_out: list[tuple[str, Receipt]] | None = None,
) -> ApplyResult:
    """Apply a WhatsApp session's receipts to its recipients and their broadcasts' counters.

    One SELECT per batch (per 1000 distinct ids), receipts in ``at`` order,
    one UPDATE per changed recipient and one per touched broadcast. ``at`` is
    the write time (``updated_at``); the receipts' own times set the
    timestamps. Uses only ``session``: the caller owns the transaction.
    """
    return await apply_receipt_groups(session, {session_id: receipts}, at, unknown_out)


async def apply_receipt_groups(
    session: AsyncSession,
    groups: Mapping[str, Sequence[Receipt]],
    at: datetime,
    unknown_out: list[tuple[str, Receipt]] | None = None,
) -> ApplyResult:
    """``apply_receipts`` for several sessions at once; the receipts whose message no
    recipient has (yet) are added to ``unknown_out`` if given.

    Every recipient row is read (and locked) before any counter is touched, so
    locks are always taken recipients first, then broadcasts in id order.
    """
    repo = ReceiptRepository(session)
    rows_by_session: dict[str, list[RecipientRow]] = {}
    for session_id in sorted(groups):
        ids = {r.provider_message_id for r in groups[session_id]}
        rows_by_session[session_id] = await repo.recipients_by_provider_ids(session_id, ids)

    total = ApplyResult()
    writes: list[RecipientWrite] = []
    moves: dict[int, dict[tuple[RecipientStatus, RecipientStatus], int]] = defaultdict(dict)
    applied_log: list[_Applied] = []
    unknown_ids: list[str] = []
    for session_id in sorted(groups):
        by_id: dict[str, list[RecipientRow]] = defaultdict(list)
        for row in rows_by_session[session_id]:
            by_id[row.provider_message_id].append(row)
        before = {row.id: _state_of(row) for row in rows_by_session[session_id]}
        after = dict(before)
        applied = ignored = unknown = 0
        for receipt in sorted(groups[session_id], key=lambda r: r.at):
            targets = by_id.get(receipt.provider_message_id)
            if not targets:
                unknown += 1
                unknown_ids.append(receipt.provider_message_id)
                if unknown_out is not None:
                    unknown_out.append((session_id, receipt))
                continue
            changed = False
            for row in targets:
                new = apply_receipt(after[row.id], receipt)
                if new != after[row.id]:
                    after[row.id] = new
                    changed = True
                    applied_log.append(_Applied(row, receipt, new.status))
            if changed:
                applied += 1
            else:
                ignored += 1
        total += ApplyResult(applied, ignored, unknown)
        for row in rows_by_session[session_id]:
            old, new = before[row.id], after[row.id]
            if new == old:
                continue
            writes.append(
                RecipientWrite(
                    id=row.id,
                    expected_status=old.status.value,
                    status=new.status.value,
                    delivered_at=new.delivered_at,
                    read_at=new.read_at,
                    failed_at=new.failed_at,
                    error_code=new.error_code,
                    error_message=new.error_message,
                )
            )
            if new.status is not old.status:
                pairs = moves[row.broadcast_id]
                pairs[(old.status, new.status)] = pairs.get((old.status, new.status), 0) + 1

    await repo.write_recipients(writes, at)
    await shift_counts(session, {b: moves[b] for b in sorted(moves)}, at)
    # After the counts (the broadcasts are locked, so events keep commit order) and before
    # a finished broadcast's new outcome: a failure WhatsApp reported after the send.
    await Outbox(session).recipients_failed(_newly_failed(rows_by_session, writes), at)
    # Only a move into or out of failed can change a finished broadcast's outcome.
    outcome_may_change = [
        b for b, pairs in moves.items() if any(_R.FAILED in pair for pair in pairs)
    ]
    for broadcast_id, status, sent, failed in await resettle(session, outcome_may_change, at):
        log.info(
            f"{BROADCAST_TAG} outcome follows late receipts",
            broadcast_id=broadcast_id,
            status=status,
            sent_count=sent,
            failed_count=failed,
        )
    _log_batch(applied_log, unknown_ids, total)
    return total


def _newly_failed(
    rows_by_session: dict[str, list[RecipientRow]], writes: list[RecipientWrite]
) -> list[FailedRecipient]:
    """The recipients these writes move into ``failed``, as ``recipient.failed`` reports them."""
    rows = {row.id: row for rows in rows_by_session.values() for row in rows}
    failed = _R.FAILED.value
    return [
        FailedRecipient(
            rows[w.id].tenant_id,
            rows[w.id].broadcast_id,
            w.id,
            rows[w.id].phone,
            rows[w.id].lead_id,
            w.error_code,
            w.error_message,
        )
        for w in writes
        if w.status == failed and w.expected_status != failed
    ]


def _log_batch(applied: list[_Applied], unknown_ids: list[str], total: ApplyResult) -> None:
    for item in applied:
        log.info(
            f"{SEND_TAG} receipt applied",
            broadcast_id=item.row.broadcast_id,
            recipient_id=item.row.id,
            phone=mask_phone(item.row.phone),
            receipt=item.receipt.status.value,
            status=item.status.value,
            provider_message_id=item.receipt.provider_message_id,
        )
    if unknown_ids:
        log.info(
            f"{SEND_TAG} receipts for unknown messages accepted",
            broadcast_id=None,
            unknown=len(unknown_ids),
            provider_message_ids=unknown_ids[:UNKNOWN_IDS_LOGGED],
        )
    if total.ignored:
        log.debug(f"{SEND_TAG} receipts changed nothing", broadcast_id=None, ignored=total.ignored)
