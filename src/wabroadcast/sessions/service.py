"""Sessions: a tenant's WhatsApp numbers, each through one provider, and their config.

A session's config is validated by its provider's model; its secret fields are
encrypted at rest (``crypto``) and write-only: responses and error messages
show only their last characters. Webhooks find a session by its webhook key,
which the provider derives from the config (Meta's phone number id, say).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.crypto import SecretKeyMissing, SecretsUnreadable
from wabroadcast.db.models import WhatsAppSession
from wabroadcast.dispatch.pacing import effective_pace
from wabroadcast.dispatch.repository.daily_sends import (
    CappedToday,
    DailySendsRepository,
    cap_settings,
)
from wabroadcast.domain import daily_caps
from wabroadcast.domain.errors import (
    NotFound,
    ProviderSetupFailed,
    SessionExists,
    SessionInUse,
    SessionNotFound,
    ValidationFailed,
    WebhookKeyInUse,
)
from wabroadcast.domain.recipients import is_storable_text
from wabroadcast.pagination import decode_session_cursor, encode_session_cursor
from wabroadcast.providers.plugin import ProviderPlugin
from wabroadcast.providers.registry import plugin_for
from wabroadcast.sessions.config import (
    SecretReader,
    SessionInfo,
    full_config,
    mask,
    session_info,
    split_secrets,
    validate_config,
)
from wabroadcast.sessions.repository import SessionRepository
from wabroadcast.sessions.schemas import (
    SessionCreate,
    SessionOut,
    SessionSettings,
    SessionsPage,
    SessionStatusOut,
    SessionUpdate,
)

if TYPE_CHECKING:
    from wabroadcast.clock import Clock
    from wabroadcast.context import AppContext
    from wabroadcast.tenants.service import TenantContext

WEBHOOKS_PATH = "/api/whatsapp/webhooks"


def _store_config(
    row: WhatsAppSession, plugin: ProviderPlugin, config: Mapping[str, object], box: SecretReader
) -> None:
    plain, hidden = split_secrets(plugin, config)
    row.config = plain
    row.secret_config = box.encrypt(hidden) if hidden else None
    row.webhook_key = plugin.webhook_key(row.id, config)


async def _ensure_webhook_key_free(
    repo: SessionRepository, plugin: ProviderPlugin, key: str | None, session_id: str
) -> None:
    if key is None:
        return
    owner = await repo.webhook_key_owner(plugin.kind, key)
    if owner is not None and owner != session_id:
        raise WebhookKeyInUse(
            f"Another session already receives {plugin.title} webhooks for this number",
            details={"provider": plugin.kind},
        )


# --- reads ---------------------------------------------------------------------------


def public_url(ctx: AppContext) -> tuple[str, str | None]:
    """The address providers call us at, and a warning when it is only this machine's."""
    settings = ctx.settings
    if settings.public_url:
        return settings.public_url.rstrip("/"), None
    host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
    return (
        f"http://{host}:{settings.port}",
        "WABROADCAST_PUBLIC_URL is not set: this is the local serve address, which providers "
        "outside this machine cannot reach.",
    )


def webhook_url(ctx: AppContext, row: WhatsAppSession) -> tuple[str | None, str | None]:
    plugin = plugin_for(row.provider)
    if plugin.webhook is None:
        return None, None
    base, warning = public_url(ctx)
    url = f"{base}{WEBHOOKS_PATH}/{plugin.kind}"
    if plugin.webhook.per_session_url:
        url += f"/{row.webhook_key or row.id}"
    return url, warning


async def days_of(
    db: AsyncSession, rows: Sequence[WhatsAppSession], now: datetime
) -> dict[str, CappedToday]:
    """Today's cap and sends of each capped session among ``rows``."""
    return await DailySendsRepository(db).capped_today([r.id for r in rows], now, lock=False)


def session_out(
    ctx: AppContext, row: WhatsAppSession, today: CappedToday | None = None
) -> SessionOut:
    """The session as a client sees it; ``today``: its day's cap and sends (None: no cap)."""
    plugin = plugin_for(row.provider)
    config: dict[str, Any] = dict(row.config or {})
    if row.secret_config:
        try:
            hidden = ctx.secrets.decrypt(row.secret_config)
        except (SecretKeyMissing, SecretsUnreadable):
            # Shown as set but unknown: the session needs its secrets given again.
            hidden = dict.fromkeys(plugin.secret_fields, "")
        for name, value in hidden.items():
            config[name] = mask(value)
    pace = effective_pace(row.provider, row.rate_per_minute, row.jitter_ms)
    url, warning = webhook_url(ctx, row)
    return SessionOut(
        session_id=row.id,
        provider=plugin.kind,
        default=row.is_default,
        config=config,
        max_concurrency=row.max_concurrency,
        rate_per_minute=pace.rate_per_minute,
        jitter_ms=pace.jitter_ms,
        pace_is_default=row.rate_per_minute is None and row.jitter_ms is None,
        daily_cap=row.daily_cap,
        warmup_days=row.warmup_days,
        warmup_start_cap=row.warmup_start_cap,
        warmup_growth=row.warmup_growth,
        warmup_started_at=row.warmup_started_at,
        cap_today=None if today is None else today.cap,
        sent_today=None if today is None else today.sends,
        pause_error_rate=row.pause_error_rate,
        check_numbers=row.check_numbers,
        webhook_url=url,
        webhook_url_warning=warning,
        created_at=row.created_at,
    )


async def resolve_session(
    session: AsyncSession, tenant: TenantContext, session_id: str | None
) -> SessionInfo:
    """The named session if the tenant owns it, else its default; 404 otherwise."""
    return session_info(await session_row(SessionRepository(session), tenant, session_id))


async def session_row(
    repo: SessionRepository, tenant: TenantContext, session_id: str | None
) -> WhatsAppSession:
    if session_id is None:
        row = await repo.default(tenant.tenant_id)
    elif is_storable_text(session_id):
        row = await repo.get(tenant.tenant_id, session_id)
    else:  # NUL or a lone surrogate: no session has that id, and no database takes it
        row = None
    if row is None:
        raise SessionNotFound(
            "WhatsApp session not found",
            details={"session_id": session_id or default_session_id(tenant.tenant_id)},
        )
    return row


def default_session_id(tenant_id: int) -> str:
    return f"business_{tenant_id}"


async def list_sessions(
    ctx: AppContext, tenant: TenantContext, *, cursor: str | None, limit: int
) -> SessionsPage:
    after = decode_session_cursor(cursor)
    async with ctx.database.transaction() as db:
        rows = await SessionRepository(db).page(tenant.tenant_id, after, limit)
        days = await days_of(db, rows, ctx.clock.now())
        items = [session_out(ctx, row, days.get(row.id)) for row in rows]
    more = len(rows) == limit and rows
    return SessionsPage(
        items=items, next_cursor=encode_session_cursor(rows[-1].id) if more else None
    )


async def get_session(ctx: AppContext, tenant: TenantContext, session_id: str) -> SessionOut:
    async with ctx.database.transaction() as db:
        row = await session_row(SessionRepository(db), tenant, session_id)
        return session_out(ctx, row, (await days_of(db, [row], ctx.clock.now())).get(row.id))


# --- writes --------------------------------------------------------------------------


async def add_session(
    db: AsyncSession,
    ctx_clock: Clock,
    box: SecretReader,
    tenant: TenantContext,
    body: SessionCreate,
) -> WhatsAppSession:
    """A new session of the tenant, its config validated and its secrets encrypted.

    Uses only ``db``: the caller owns the transaction.
    """
    plugin = plugin_for(body.provider)
    config = validate_config(plugin, body.config)
    repo = SessionRepository(db)
    first = await repo.count(tenant.tenant_id) == 0
    session_id = body.session_id
    if session_id is None:
        session_id = default_session_id(tenant.tenant_id)
        if not first or await repo.id_taken(session_id):
            session_id = f"{session_id}_{secrets.token_hex(4)}"
    if await repo.id_taken(session_id):
        raise SessionExists(
            "A session with this id already exists", details={"session_id": session_id}
        )
    await _ensure_webhook_key_free(repo, plugin, plugin.webhook_key(session_id, config), session_id)
    default = first or bool(body.default)
    if default:
        await repo.clear_default(tenant.tenant_id)
    row = WhatsAppSession(
        id=session_id,
        tenant_id=tenant.tenant_id,
        provider=plugin.kind,
        is_default=default,
        max_concurrency=body.max_concurrency or plugin.default_max_concurrency,
        webhook_secret=secrets.token_hex(32),
        created_at=ctx_clock.now(),
    )
    _apply_settings(row, body, ctx_clock.now())
    _store_config(row, plugin, config, box)
    try:
        await repo.add(row)
    except IntegrityError:
        # Another request took the id or the number between the checks and the insert.
        raise SessionExists(
            "A session with this id or this number was just added",
            details={"session_id": session_id},
        ) from None
    if plugin.on_session_created is not None:
        await plugin.on_session_created(db, ctx_clock, row.id)
    return row


async def create_session(ctx: AppContext, tenant: TenantContext, body: SessionCreate) -> SessionOut:
    async with ctx.database.transaction() as db:
        row = await add_session(db, ctx.clock, ctx.secrets, tenant, body)
        await _prepare(ctx, row)
        return session_out(ctx, row, (await days_of(db, [row], ctx.clock.now())).get(row.id))


async def _prepare(ctx: AppContext, row: WhatsAppSession) -> None:
    """Let the provider set the session up (its ``prepare_session``) before it is stored;
    a refusal or no answer in time is a 502 and the caller's transaction stores nothing."""
    plugin = plugin_for(row.provider)
    if plugin.prepare_session is None:
        return
    url, _ = webhook_url(ctx, row)
    timeout = ctx.settings.connection_check_timeout_s
    try:
        await asyncio.wait_for(
            plugin.prepare_session(session_info(row).ref(ctx.secrets), url or ""), timeout
        )
    except TimeoutError:
        raise ProviderSetupFailed(
            f"{plugin.title} did not answer within {timeout:g} s; nothing was saved",
            details={"provider": plugin.kind},
        ) from None


# Account-safety settings: given as null, they go back to the provider's preset (or the
# default); the pace settings given as null keep their value, as they always did.
_RESETTABLE = (
    "daily_cap",
    "warmup_days",
    "warmup_start_cap",
    "warmup_growth",
    "pause_error_rate",
    "check_numbers",
)


def _apply_settings(row: WhatsAppSession, body: SessionSettings, now: datetime) -> None:
    """Set what ``body`` gives; a warm-up given (its days or start cap) starts today."""
    given = body.model_dump(exclude_none=True)
    for name in ("max_concurrency", "rate_per_minute", "jitter_ms", *_RESETTABLE):
        if name in given:
            setattr(row, name, given[name])
        elif name in _RESETTABLE and name in body.model_fields_set:
            setattr(row, name, None)
    if "warmup_days" in given or "warmup_start_cap" in given:
        row.warmup_started_at = now
    rule = daily_caps.effective(cap_settings(row))
    if rule.warmup_days > 0 and rule.warmup_start_cap <= 0:
        raise ValidationFailed(
            "warmup_start_cap: a warm-up needs its first day's cap",
            details={
                "errors": [
                    {
                        "field": "warmup_start_cap",
                        "message": "required when warmup_days is more than 0",
                        "type": "missing",
                    }
                ],
                "error_count": 1,
            },
        )


async def update_session(
    ctx: AppContext, tenant: TenantContext, session_id: str, body: SessionUpdate
) -> SessionOut:
    """Change what is given; config fields left out (secrets included) keep their value."""
    async with ctx.database.transaction() as db:
        repo = SessionRepository(db)
        row = await session_row(repo, tenant, session_id)
        if body.config is not None:
            plugin = plugin_for(row.provider)
            current = full_config(row.config or {}, row.secret_config, ctx.secrets)
            config = validate_config(plugin, {**current, **body.config})
            await _ensure_webhook_key_free(repo, plugin, plugin.webhook_key(row.id, config), row.id)
            _store_config(row, plugin, config, ctx.secrets)
            await _prepare(ctx, row)
        _apply_settings(row, body, ctx.clock.now())
        if body.default:
            await repo.clear_default(tenant.tenant_id)
            row.is_default = True
        await db.flush()
        return session_out(ctx, row, (await days_of(db, [row], ctx.clock.now())).get(row.id))


async def delete_session(ctx: AppContext, tenant: TenantContext, session_id: str) -> None:
    """Delete a session with no active broadcast; its finished broadcasts stay readable.

    When it was the default, the tenant's oldest remaining session becomes the default.
    """
    async with ctx.database.transaction() as db:
        repo = SessionRepository(db)
        row = await session_row(repo, tenant, session_id)
        active = await repo.active_broadcasts(row.id)
        if active:
            raise SessionInUse(
                f"The session has {active} active broadcast(s): cancel them or wait for them "
                "to finish before deleting it",
                details={"session_id": row.id, "active_broadcasts": active},
            )
        was_default = row.is_default
        await repo.mark_deleted(row, ctx.clock.now())
        if was_default:
            successor = await repo.oldest(tenant.tenant_id)
            if successor is not None:
                successor.is_default = True
                await db.flush()


async def update_session_settings(
    session: AsyncSession, session_id: str, settings: SessionSettings, now: datetime | None = None
) -> dict[str, object]:
    """Change a session's pace and concurrency by its id (a warm-up given starts at ``now``)."""
    row = await SessionRepository(session).get_any_tenant(session_id)
    if row is None:
        raise SessionNotFound("WhatsApp session not found", details={"session_id": session_id})
    _apply_settings(row, settings, now or datetime.now(UTC))
    await session.flush()
    return {
        "session_id": row.id,
        "provider": row.provider,
        "max_concurrency": row.max_concurrency,
        "rate_per_minute": row.rate_per_minute,
        "jitter_ms": row.jitter_ms,
    }


# --- status --------------------------------------------------------------------------


async def session_status(
    ctx: AppContext, tenant: TenantContext, session_id: str | None
) -> SessionStatusOut:
    """The session's connection state as its provider reports it, with its send settings."""
    async with ctx.database.transaction() as session:
        info = await resolve_session(session, tenant, session_id)
    provider = ctx.providers.for_kind(info.provider)
    pace = effective_pace(info.provider, info.rate_per_minute, info.jitter_ms)
    state: Literal["connected", "disconnected", "unknown"] = "unknown"
    detail: str | None = None
    try:
        status = await asyncio.wait_for(
            provider.connection_status(info.ref(ctx.secrets)),
            ctx.settings.connection_check_timeout_s,
        )
        state = "connected" if status.connected else "disconnected"
        detail = status.detail
    except TimeoutError:
        detail = "status check timed out"
    except Exception as exc:
        detail = f"status check failed: {exc!r}"[:200]
    return SessionStatusOut(
        session_id=info.session_id,
        provider=info.provider,
        state=state,
        connected=state == "connected",
        detail=detail,
        checked_at=ctx.clock.now(),
        max_concurrency=info.max_concurrency,
        rate_per_minute=pace.rate_per_minute,
        jitter_ms=pace.jitter_ms,
        pace_is_default=info.rate_per_minute is None and info.jitter_ms is None,
    )


async def tenant_of_session(session: AsyncSession, session_id: str) -> TenantContext:
    """The tenant a session belongs to (the CLI names sessions by id alone)."""
    from wabroadcast.tenants.repository import TenantRepository
    from wabroadcast.tenants.service import TenantContext

    row = await SessionRepository(session).get_any_tenant(session_id)
    tenant = None if row is None else await TenantRepository(session).get(row.tenant_id)
    if tenant is None:
        raise SessionNotFound("WhatsApp session not found", details={"session_id": session_id})
    return TenantContext.of(tenant)


async def tenant_by_id(session: AsyncSession, tenant_id: int) -> TenantContext:
    from wabroadcast.tenants.repository import TenantRepository
    from wabroadcast.tenants.service import TenantContext

    tenant = await TenantRepository(session).get(tenant_id)
    if tenant is None:
        raise NotFound("Tenant not found", details={"tenant_id": tenant_id})
    return TenantContext.of(tenant)
