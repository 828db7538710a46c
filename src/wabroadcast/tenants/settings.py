"""A tenant's sending settings: time zone, quiet hours and the opt-out reply.

One service for the API (``PATCH /api/whatsapp/settings``), the CLI (``tenant set``)
and the dashboard, so all three refuse the same values the same way.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.context import AppContext
from wabroadcast.db.models import Tenant
from wabroadcast.domain.errors import NotFound, ValidationFailed
from wabroadcast.domain.quiet_hours import (
    MAX_ZONE_CHARS,
    parse_window,
    zone,
)
from wabroadcast.domain.recipients import is_storable_text
from wabroadcast.tenants.repository import TenantRepository

MAX_OPT_OUT_REPLY_CHARS = 1000


def checked_time_zone(value: str) -> str:
    """An IANA zone name as stored; ValueError (InvalidTimeZone) otherwise."""
    return zone(value).key


def checked_quiet_hours(value: str) -> str:
    """A window ``HH:MM-HH:MM`` as stored; ValueError (InvalidQuietHours) otherwise."""
    return str(parse_window(value))


class TenantSettingsOut(BaseModel):
    time_zone: str = Field(
        description="IANA time zone of the tenant's days and quiet hours.",
        examples=["Asia/Jerusalem"],
    )
    quiet_hours: str | None = Field(
        description=(
            "`HH:MM-HH:MM` in `time_zone`: no send starts from the start (inclusive) to "
            "the end (exclusive); a start after the end crosses midnight. None: no quiet hours."
        ),
        examples=["21:00-08:30"],
    )
    opt_out_reply: str | None = Field(
        description="Sent once to a number that opts out by a stop word (None: nothing)."
    )


class TenantSettingsPatch(BaseModel):
    """Only the fields given change; ``null`` clears quiet hours or the opt-out reply."""

    model_config = ConfigDict(extra="forbid", strict=True)

    time_zone: str | None = Field(
        default=None, max_length=MAX_ZONE_CHARS, examples=["Asia/Jerusalem"]
    )
    quiet_hours: str | None = Field(default=None, max_length=16, examples=["21:00-08:30"])
    opt_out_reply: str | None = Field(default=None, max_length=MAX_OPT_OUT_REPLY_CHARS)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("must be an IANA time zone (it cannot be cleared; UTC is one)")
        return checked_time_zone(value)

    @field_validator("quiet_hours")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        return None if value is None else checked_quiet_hours(value)

    @field_validator("opt_out_reply")
    @classmethod
    def _reply(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not is_storable_text(value):
            raise ValueError("must not contain NUL characters or unpaired surrogates")
        return value.strip() or None


def _out(tenant: Tenant) -> TenantSettingsOut:
    return TenantSettingsOut(
        time_zone=tenant.time_zone,
        quiet_hours=tenant.quiet_hours,
        opt_out_reply=tenant.opt_out_reply,
    )


async def get_settings_of(session: AsyncSession, tenant_id: int) -> TenantSettingsOut:
    tenant = await TenantRepository(session).get(tenant_id)
    if tenant is None:
        raise NotFound(f"tenant {tenant_id} not found", details={"tenant_id": tenant_id})
    return _out(tenant)


async def update_settings(
    session: AsyncSession, tenant_id: int, patch: TenantSettingsPatch
) -> TenantSettingsOut:
    """Apply the fields set in ``patch`` (validated by its model) to the tenant."""
    tenant = await TenantRepository(session).get_for_update(tenant_id)
    if tenant is None:
        raise NotFound(f"tenant {tenant_id} not found", details={"tenant_id": tenant_id})
    given = patch.model_fields_set
    if "time_zone" in given and patch.time_zone is not None:
        tenant.time_zone = patch.time_zone
    if "quiet_hours" in given:
        tenant.quiet_hours = patch.quiet_hours
    if "opt_out_reply" in given:
        tenant.opt_out_reply = patch.opt_out_reply
    await session.flush()
    return _out(tenant)


async def read_settings(ctx: AppContext, tenant_id: int) -> TenantSettingsOut:
    async with ctx.database.transaction() as session:
        return await get_settings_of(session, tenant_id)


async def change_settings(
    ctx: AppContext, tenant_id: int, patch: TenantSettingsPatch
) -> TenantSettingsOut:
    async with ctx.database.transaction() as session:
        return await update_settings(session, tenant_id, patch)


def patch_from_options(
    *, time_zone: str | None, quiet_hours: str | None, opt_out_reply: str | None
) -> TenantSettingsPatch:
    """A patch from command-line or form text: None leaves a field alone, ``off`` or
    an empty text clears quiet hours or the reply; bad values are ValidationFailed."""
    fields: dict[str, str | None] = {}
    if time_zone is not None:
        fields["time_zone"] = time_zone
    if quiet_hours is not None:
        cleared = quiet_hours.strip().lower() in ("", "off")
        fields["quiet_hours"] = None if cleared else quiet_hours
    if opt_out_reply is not None:
        fields["opt_out_reply"] = opt_out_reply if opt_out_reply.strip() else None
    problems = []
    for name, value in fields.items():
        try:
            TenantSettingsPatch.model_validate({name: value})
        except ValueError as exc:
            problems.append((name, _first_message(exc)))
    if problems:
        name, reason = problems[0]
        raise ValidationFailed(f"{name}: {reason}", details={"field": name, "value": fields[name]})
    return TenantSettingsPatch.model_validate(fields)


def _first_message(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        found = errors()
        if found:
            message = str(found[0].get("msg", exc))
            return message.removeprefix("Value error, ")
    return str(exc)
