"""``wabroadcast tenant …``: create tenants, rotate their API keys, list them, change
their settings (time zone, quiet hours, opt-out reply).

Like ``session …``, the commands work on the database at WABROADCAST_DATABASE_URL
(migrating it first) and print JSON; an API key is printed once, when it is made.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta
from typing import Annotated

import typer

from wabroadcast.cli_sessions import ConfigFile, ConfigPairs, no_such_tenant, read_config
from wabroadcast.clock import SystemClock
from wabroadcast.config import Settings, get_settings
from wabroadcast.crypto import LazySecretBox
from wabroadcast.db import migrate
from wabroadcast.db.engine import Database
from wabroadcast.domain.durations import duration_seconds
from wabroadcast.domain.errors import NotFound
from wabroadcast.providers.registry import PLUGINS
from wabroadcast.tenants.service import (
    MAX_GRACE,
    TenantSummary,
    create_tenant,
    list_tenants,
    rotate_api_key,
)
from wabroadcast.tenants.settings import TenantSettingsPatch, patch_from_options, update_settings

tenant_app = typer.Typer(help="Tenants (businesses) and their API keys.", no_args_is_help=True)


async def _create_tenant(
    settings: Settings, name: str, region: str, provider: str, config: dict[str, object]
) -> dict[str, object]:
    database = Database(settings.database_url)
    try:
        async with database.transaction() as session:
            created = await create_tenant(
                session,
                SystemClock(),
                name=name,
                region=region,
                provider=provider,
                config=config,
                box=LazySecretBox(settings),
            )
    finally:
        await database.dispose()
    return {
        "tenant_id": created.tenant_id,
        "api_key": created.api_key,
        "session_id": created.session_id,
    }


@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Option(help="The business's name.")],
    region: Annotated[
        str | None,
        typer.Option(
            help="Default phone region (ISO 3166 alpha-2) for numbers without +cc. "
            "Default: WABROADCAST_DEFAULT_REGION or IL."
        ),
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option(
            help=f"Provider of the default session ({', '.join(PLUGINS)}). "
            "Default: WABROADCAST_DEFAULT_PROVIDER."
        ),
    ] = None,
    config: ConfigPairs = None,
    config_file: ConfigFile = None,
) -> None:
    """Create a tenant and its default session; prints its API key once, as JSON."""
    settings = get_settings()
    migrate.upgrade(settings.database_url)
    created = asyncio.run(
        _create_tenant(
            settings,
            name,
            region or settings.default_region,
            provider or settings.default_provider,
            read_config(config, config_file),
        )
    )
    typer.echo(json.dumps(created, ensure_ascii=False))


GRACE_FORMS = "0, or a whole number of s, m, h or d (90s, 30m, 24h, 7d)"


def parse_duration(text: str) -> timedelta:
    """``0``, ``90s``, ``30m``, ``24h`` or ``7d`` as a timedelta (at most ``MAX_GRACE``)."""
    value = text.strip().lower()
    if value == "0":
        return timedelta(0)
    match = re.fullmatch(r"(\d{1,7})([smhd])", value)
    if match is None:
        raise typer.BadParameter(
            f"{text!r} is not a duration; use {GRACE_FORMS}", param_hint="--grace"
        )
    duration = timedelta(seconds=duration_seconds(value) or 0)
    if duration > MAX_GRACE:
        raise typer.BadParameter(
            f"{text!r} is longer than the longest grace, {MAX_GRACE.days}d", param_hint="--grace"
        )
    return duration


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


async def _rotate_key(settings: Settings, tenant_id: int, grace: timedelta) -> dict[str, object]:
    database = Database(settings.database_url)
    try:
        async with database.transaction() as session:
            rotated = await rotate_api_key(session, SystemClock(), tenant_id, grace)
    except NotFound as exc:
        raise no_such_tenant(tenant_id) from exc
    finally:
        await database.dispose()
    return {
        "tenant_id": rotated.tenant_id,
        "api_key": rotated.api_key,
        "api_key_prefix": rotated.api_key_prefix,
        "previous_key_prefix": rotated.previous_key_prefix,
        "previous_key_valid_until": _when(rotated.previous_key_valid_until),
    }


@tenant_app.command("rotate-key")
def tenant_rotate_key(
    tenant_id: Annotated[int, typer.Argument(help="The tenant's id (see `tenant list`).")],
    grace: Annotated[
        str,
        typer.Option(
            metavar="DURATION",
            help=f"How long the replaced key keeps working: {GRACE_FORMS}; 0 ends it at once.",
        ),
    ] = "24h",
) -> None:
    """Give a tenant a new API key; prints it once, as JSON.

    The replaced key keeps working for the grace period, so clients can move to
    the new one. A tenant keeps one previous key at most: rotating again while
    one is in its grace period ends that key at once, and the key replaced now
    takes its place.
    """
    period = parse_duration(grace)
    settings = get_settings()
    migrate.upgrade(settings.database_url)
    typer.echo(json.dumps(asyncio.run(_rotate_key(settings, tenant_id, period))))


async def _list_tenants(settings: Settings) -> list[TenantSummary]:
    database = Database(settings.database_url)
    try:
        async with database.transaction() as session:
            return await list_tenants(session, SystemClock())
    finally:
        await database.dispose()


def _tenant_json(tenant: TenantSummary) -> dict[str, object]:
    return {
        "tenant_id": tenant.tenant_id,
        "name": tenant.name,
        "region": tenant.region,
        "api_key_prefix": tenant.api_key_prefix,
        "previous_key_prefix": tenant.previous_key_prefix,
        "previous_key_valid_until": _when(tenant.previous_key_valid_until),
        "key_rotated_at": _when(tenant.key_rotated_at),
        "created_at": _when(tenant.created_at),
    }


def _cell(text: str | None, width: int = 40) -> str:
    """One table cell: control characters as spaces, long text cut short."""
    if text is None:
        return "-"
    flat = "".join(" " if not ch.isprintable() else ch for ch in text)
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _table_time(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _tenant_table(tenants: list[TenantSummary]) -> str:
    header = ["ID", "NAME", "REGION", "KEY", "PREVIOUS KEY", "VALID UNTIL", "CREATED"]
    rows = [
        [
            str(t.tenant_id),
            _cell(t.name),
            t.region,
            _cell(t.api_key_prefix) + "…",
            _cell(t.previous_key_prefix) + ("…" if t.previous_key_prefix else ""),
            _table_time(t.previous_key_valid_until),
            _table_time(t.created_at),
        ]
        for t in tenants
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


@tenant_app.command("list")
def tenant_list(
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON array instead of a table.")
    ] = False,
) -> None:
    """The tenants with their key prefixes (never a key) and a previous key's grace."""
    settings = get_settings()
    migrate.upgrade(settings.database_url)
    tenants = asyncio.run(_list_tenants(settings))
    if as_json:
        typer.echo(json.dumps([_tenant_json(t) for t in tenants], indent=2, ensure_ascii=False))
    elif tenants:
        typer.echo(_tenant_table(tenants))
    else:
        typer.echo("no tenants yet: `wabroadcast tenant create --name NAME` makes one", err=True)


async def _set_tenant(
    settings: Settings, tenant_id: int, patch: TenantSettingsPatch
) -> dict[str, object]:
    database = Database(settings.database_url)
    try:
        async with database.transaction() as session:
            changed = await update_settings(session, tenant_id, patch)
    except NotFound as exc:
        raise no_such_tenant(tenant_id) from exc
    finally:
        await database.dispose()
    return {"tenant_id": tenant_id, **changed.model_dump()}


@tenant_app.command("set")
def tenant_set(
    tenant_id: Annotated[int, typer.Argument(help="The tenant's id (see `tenant list`).")],
    time_zone: Annotated[
        str | None,
        typer.Option(help="IANA time zone of its days and quiet hours, e.g. Asia/Jerusalem."),
    ] = None,
    quiet_hours: Annotated[
        str | None,
        typer.Option(
            metavar="HH:MM-HH:MM",
            help="No send starts in this daily window (e.g. 21:00-08:30); off clears it.",
        ),
    ] = None,
    opt_out_reply: Annotated[
        str | None,
        typer.Option(
            help="Text sent once to a number that opts out by a stop word; off or '' clears it."
        ),
    ] = None,
) -> None:
    """Change a tenant's time zone, quiet hours or opt-out reply; prints them as JSON."""
    reply = opt_out_reply
    if reply is not None and reply.strip().lower() == "off":
        reply = ""
    patch = patch_from_options(time_zone=time_zone, quiet_hours=quiet_hours, opt_out_reply=reply)
    settings = get_settings()
    migrate.upgrade(settings.database_url)
    typer.echo(json.dumps(asyncio.run(_set_tenant(settings, tenant_id, patch)), ensure_ascii=False))
