"""Number checks before sending: a number not on WhatsApp fails without a send.

WhatsApp Web numbers get restricted for sending to numbers that are not on
WhatsApp, so where the provider can tell (``NumberChecker``) and the session
checks (its ``check_numbers``, else the provider's default), a slot asks about
the numbers of each provider call just before making it: checks go at the pace
of sends, and only for numbers about to be sent to. Answers are kept per tenant
for ``FRESH_FOR`` (30 days), so a number is asked about at most once in that time.

A check that fails (timeout, unreachable, 5xx, a session not connected) never
holds sending up: the call goes out unchecked (fail open), as it did before
checks existed, and the failure is logged. The send then meets whatever made
the check fail (a disconnected session holds its recipients, as always).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import cast

from wabroadcast.context import AppContext
from wabroadcast.db.models import WhatsAppSession
from wabroadcast.dispatch.repository.daily_sends import DailySendsRepository
from wabroadcast.dispatch.repository.number_checks import NumberCheckRepository
from wabroadcast.dispatch.repository.rows import Claimed, Result
from wabroadcast.domain.phones import mask_phone
from wabroadcast.domain.status import RecipientStatus
from wabroadcast.observability.logging import SEND_TAG, get_logger
from wabroadcast.providers.base import NumberChecker, Provider, SessionRef

log = get_logger("wabroadcast.dispatch")

NOT_ON_WHATSAPP = "NOT_ON_WHATSAPP"
NOT_ON_WHATSAPP_MESSAGE = (
    "Checked before sending: this number is not on WhatsApp, so nothing was sent to it."
)
# Longest wait for one check call before the call's numbers go out unchecked.
CHECK_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Screened:
    """A provider call's recipients after the number check."""

    # Those to send to: on WhatsApp, or unknown (the check failed or did not say).
    to_send: list[Claimed]
    # The failed results of those not on WhatsApp (nothing is sent to them).
    not_on_whatsapp: list[Result]
    # Phones a check found on WhatsApp: the provider need not ask again.
    on_whatsapp: frozenset[str]


def checker_for(provider: Provider, session: WhatsAppSession) -> NumberChecker | None:
    """The provider, if it checks numbers for this session; None when nothing is checked."""
    if not _can_check(type(provider)):
        return None
    checker = cast(NumberChecker, provider)
    setting = session.check_numbers
    checks = checker.checks_numbers_by_default if setting is None else setting
    return checker if checks else None


@cache
def _can_check(kind: type[Provider]) -> bool:
    """Whether providers of this class can check numbers: asked once per class, since an
    isinstance test against a protocol looks at every member, and this runs per call."""
    return all(hasattr(kind, name) for name in ("check_numbers", "checks_numbers_by_default"))


async def screen(
    ctx: AppContext,
    checker: NumberChecker,
    ref: SessionRef,
    items: Sequence[Claimed],
    epoch: int,
) -> Screened:
    """Split ``items`` by what the cache, else one check call for the numbers it does
    not know, says about each number; new answers are cached."""
    phones = sorted({item.phone for item in items})
    async with ctx.database.transaction() as db:
        known = await NumberCheckRepository(db).fresh(ref.tenant_id, phones, ctx.clock.now())
    unknown = [phone for phone in phones if phone not in known]
    asked: dict[str, bool] = {}
    if unknown:
        asked = await _ask(checker, ref, unknown, items)
        if asked:
            async with ctx.database.transaction() as db:
                await NumberCheckRepository(db).remember(ref.tenant_id, asked, ctx.clock.now())
            known.update(asked)
    to_send: list[Claimed] = []
    failed: list[Result] = []
    for item in items:
        if known.get(item.phone) is not False:
            to_send.append(item)
            continue
        failed.append(
            Result(
                item.recipient_id,
                item.broadcast_id,
                epoch,
                RecipientStatus.FAILED,
                error_code=NOT_ON_WHATSAPP,
                error_message=NOT_ON_WHATSAPP_MESSAGE,
            )
        )
        log.info(
            f"{SEND_TAG} not on WhatsApp: failed without a send",
            broadcast_id=item.broadcast_id,
            session_id=ref.session_id,
            phone=mask_phone(item.phone),
            cached=item.phone not in asked,
        )
    if failed:
        # No message goes to them: their claims do not count against the day's cap.
        async with ctx.database.transaction() as db:
            await DailySendsRepository(db).give_back(ref.session_id, len(failed), ctx.clock.now())
    on_whatsapp = frozenset(phone for phone, on in known.items() if on)
    return Screened(to_send, failed, on_whatsapp)


async def _ask(
    checker: NumberChecker, ref: SessionRef, phones: list[str], items: Sequence[Claimed]
) -> dict[str, bool]:
    """The provider's answers about ``phones`` (only those asked about); none if the
    check failed, which is logged: the numbers are then sent to unchecked."""
    try:
        answers = await asyncio.wait_for(checker.check_numbers(ref, phones), CHECK_TIMEOUT_S)
    except Exception as exc:
        log.warning(
            f"{SEND_TAG} number check failed; sending without it",
            broadcast_id=sorted({item.broadcast_id for item in items}),
            session_id=ref.session_id,
            numbers=len(phones),
            error=repr(exc)[:300],
        )
        return {}
    asked = set(phones)
    return {phone: bool(on) for phone, on in answers.items() if phone in asked}
