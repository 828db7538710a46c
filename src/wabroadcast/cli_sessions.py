"""``wabroadcast session …``: add, list, show, change and delete WhatsApp sessions.

The commands work on the database at WABROADCAST_DATABASE_URL, like ``tenant
create``, and print what the API would answer, as JSON; secrets are never
printed. Config is given as ``--config KEY=VALUE`` (repeatable) or a JSON file,
which keeps tokens out of the shell history.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import segno
import typer

from wabroadcast.config import get_settings
from wabroadcast.db import migrate
from wabroadcast.domain.errors import NotFound, SessionNotFound
from wabroadcast.providers.registry import PLUGINS
from wabroadcast.sessions import linking
from wabroadcast.sessions import service as sessions
from wabroadcast.sessions.schemas import LinkOut, SessionCreate, SessionUpdate
from wabroadcast.tenants.service import TenantContext

if TYPE_CHECKING:
    from wabroadcast.context import AppContext

T = TypeVar("T")
# How often ``session connect`` asks the gateway for a new QR code or the link.
POLL_S = 1.0

session_app = typer.Typer(
    help=f"WhatsApp sessions: one per number, each through a provider ({', '.join(PLUGINS)}).",
    no_args_is_help=True,
)

ConfigPairs = Annotated[
    list[str] | None,
    typer.Option(
        "--config", help="A provider config field, KEY=VALUE; repeat for more (see docs)."
    ),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config-file", exists=True, dir_okay=False, help="The provider config as a JSON object."
    ),
]
MakeDefault = Annotated[
    bool, typer.Option("--default", help="Make it the tenant's default session.")
]
MaxConcurrency = Annotated[
    int | None, typer.Option(min=1, max=64, help="Sends in flight at once (1-2 is safe).")
]
RatePerMinute = Annotated[
    float | None, typer.Option(min=0, help="Messages per minute; 0 = no pacing.")
]
JitterMs = Annotated[
    int | None, typer.Option(min=0, help="Random extra gap before each send, 0..J ms.")
]
DailyCap = Annotated[
    int | None,
    typer.Option(
        min=0,
        max=10_000_000,
        help="Sends per calendar day in the tenant's time zone; 0 = no cap. Never set: the "
        "provider's preset (WhatsApp Web gateways 1500 after a 7-day warm-up from 20).",
    ),
]
WarmupDays = Annotated[
    int | None,
    typer.Option(
        min=0,
        max=365,
        help="Days of warm-up before the daily cap applies; 0 = none. Starts the warm-up today.",
    ),
]
WarmupStartCap = Annotated[
    int | None,
    typer.Option(
        min=1, max=10_000_000, help="The warm-up's cap on its first day. Starts it today."
    ),
]
WarmupGrowth = Annotated[
    float | None,
    typer.Option(min=1, max=10, help="The warm-up cap's factor per day (e.g. 1.5)."),
]
PauseErrorRate = Annotated[
    float | None,
    typer.Option(
        max=1,
        help="Share of recent sends failed for recipient reasons that pauses the session's "
        "broadcasts (0 < R <= 1; default 0.2).",
    ),
]
CheckNumbers = Annotated[
    bool | None,
    typer.Option(
        "--check-numbers/--no-check-numbers",
        help="Ask the provider whether each number is on WhatsApp before sending "
        "(default: the provider's).",
        show_default=False,
    ),
]


def read_config(pairs: list[str] | None, file: Path | None) -> dict[str, Any]:
    """The config from a JSON file, then ``KEY=VALUE`` pairs over it."""
    config: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeError, ValueError) as exc:
            raise typer.BadParameter(
                f"{file}: not a JSON file ({exc})", param_hint="--config-file"
            ) from None
        if not isinstance(loaded, dict):
            raise typer.BadParameter(f"{file}: must hold a JSON object", param_hint="--config-file")
        config.update(loaded)
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r}: give KEY=VALUE", param_hint="--config")
        config[key.strip()] = value
    return config


def _run(work: Callable[[AppContext], Awaitable[T]]) -> T:
    from wabroadcast.api.app import build_context  # the web app: only for the commands using it

    settings = get_settings()
    migrate.upgrade(settings.database_url)

    async def run() -> T:
        ctx = build_context(settings)
        try:
            return await work(ctx)
        finally:
            await ctx.providers.aclose()
            await ctx.database.dispose()

    return asyncio.run(run())


def no_such_tenant(tenant_id: int) -> NotFound:
    """An unknown tenant id, saying how to find the ids."""
    return NotFound(
        f"there is no tenant {tenant_id}; `wabroadcast tenant list` lists the tenants",
        details={"tenant_id": tenant_id},
    )


async def _owner_of_session(ctx: AppContext, session_id: str) -> TenantContext:
    """The tenant of ``session_id``; an unknown id is an error saying how to find the ids."""
    try:
        async with ctx.database.transaction() as db:
            return await sessions.tenant_of_session(db, session_id)
    except SessionNotFound:
        raise SessionNotFound(
            f"there is no WhatsApp session {session_id[:100]!r}; "
            "`wabroadcast session list --tenant TENANT_ID` lists a tenant's sessions",
            details={"session_id": session_id},
        ) from None


async def _tenant(ctx: AppContext, tenant_id: int) -> TenantContext:
    """The tenant ``tenant_id``; an unknown id is an error saying how to find the ids."""
    try:
        async with ctx.database.transaction() as db:
            return await sessions.tenant_by_id(db, tenant_id)
    except NotFound:
        raise no_such_tenant(tenant_id) from None


def _print(model: Any) -> None:
    typer.echo(model.model_dump_json(indent=2))


@session_app.command("create")
def create(
    tenant: Annotated[int, typer.Option(help="The tenant the session belongs to.")],
    provider: Annotated[str, typer.Option(help=f"One of: {', '.join(PLUGINS)}.")],
    session_id: Annotated[
        str | None, typer.Option("--id", help="The session id. Default: generated.")
    ] = None,
    config: ConfigPairs = None,
    config_file: ConfigFile = None,
    default: MakeDefault = False,
    max_concurrency: MaxConcurrency = None,
    rate_per_minute: RatePerMinute = None,
    jitter_ms: JitterMs = None,
) -> None:
    """Add a session; prints it as JSON (secrets masked), with its webhook URL."""
    body = SessionCreate(
        session_id=session_id,
        provider=provider,
        config=read_config(config, config_file),
        default=default or None,
        max_concurrency=max_concurrency,
        rate_per_minute=rate_per_minute,
        jitter_ms=jitter_ms,
    )

    async def work(ctx: AppContext) -> Any:
        owner = await _tenant(ctx, tenant)
        return await sessions.create_session(ctx, owner, body)

    _print(_run(work))


@session_app.command("list")
def list_(tenant: Annotated[int, typer.Option(help="Whose sessions.")]) -> None:
    """A tenant's sessions, as JSON."""

    async def work(ctx: AppContext) -> list[Any]:
        owner = await _tenant(ctx, tenant)
        items: list[Any] = []
        cursor = None
        while True:
            page = await sessions.list_sessions(ctx, owner, cursor=cursor, limit=100)
            items += [item.model_dump(mode="json") for item in page.items]
            if page.next_cursor is None:
                return items
            cursor = page.next_cursor

    typer.echo(json.dumps(_run(work), indent=2, ensure_ascii=False))


@session_app.command("show")
def show(session_id: Annotated[str, typer.Argument(help="e.g. business_1")]) -> None:
    """One session as JSON (secrets masked), and its connection state now."""

    async def work(ctx: AppContext) -> dict[str, Any]:
        owner = await _owner_of_session(ctx, session_id)
        out = await sessions.get_session(ctx, owner, session_id)
        status = await sessions.session_status(ctx, owner, session_id)
        return {
            **out.model_dump(mode="json"),
            "status": status.model_dump(mode="json", include={"state", "detail"}),
        }

    typer.echo(json.dumps(_run(work), indent=2, ensure_ascii=False))


@session_app.command("set")
def set_(
    session_id: Annotated[str, typer.Argument(help="e.g. business_1")],
    config: ConfigPairs = None,
    config_file: ConfigFile = None,
    default: MakeDefault = False,
    max_concurrency: MaxConcurrency = None,
    rate_per_minute: RatePerMinute = None,
    jitter_ms: JitterMs = None,
    daily_cap: DailyCap = None,
    warmup_days: WarmupDays = None,
    warmup_start_cap: WarmupStartCap = None,
    warmup_growth: WarmupGrowth = None,
    pause_error_rate: PauseErrorRate = None,
    check_numbers: CheckNumbers = None,
) -> None:
    """Change a session's config, pace, concurrency, daily cap or warm-up; what is not
    given keeps its value."""
    if pause_error_rate is not None and pause_error_rate <= 0:
        raise typer.BadParameter("must be more than 0", param_hint="--pause-error-rate")
    changes = read_config(config, config_file)
    given = {
        "config": changes or None,
        "default": True if default else None,
        "max_concurrency": max_concurrency,
        "rate_per_minute": rate_per_minute,
        "jitter_ms": jitter_ms,
        "daily_cap": daily_cap,
        "warmup_days": warmup_days,
        "warmup_start_cap": warmup_start_cap,
        "warmup_growth": warmup_growth,
        "pause_error_rate": pause_error_rate,
        "check_numbers": check_numbers,
    }
    # Only the options given: a setting passed as null would go back to its preset.
    body = SessionUpdate.model_validate(
        {name: value for name, value in given.items() if value is not None}
    )

    async def work(ctx: AppContext) -> Any:
        owner = await _owner_of_session(ctx, session_id)
        return await sessions.update_session(ctx, owner, session_id, body)

    _print(_run(work))


@session_app.command("delete")
def delete(session_id: Annotated[str, typer.Argument(help="e.g. business_1")]) -> None:
    """Delete a session that has no active broadcast (its history stays)."""

    async def work(ctx: AppContext) -> None:
        owner = await _owner_of_session(ctx, session_id)
        await sessions.delete_session(ctx, owner, session_id)

    _run(work)
    typer.echo(json.dumps({"deleted": session_id}))


def _print_qr(text: str) -> None:
    """The QR code in the terminal, for the phone's camera (WhatsApp, Linked devices)."""
    qr = segno.make(text, error="l")
    buffer = io.StringIO()
    qr.terminal(out=buffer, compact=True)
    typer.echo(buffer.getvalue())


@session_app.command("connect")
def connect(
    session_id: Annotated[str, typer.Argument(help="A Baileys session, e.g. business_1")],
    timeout: Annotated[
        float, typer.Option(min=1, help="Give up after this many seconds without a link.")
    ] = 300,
) -> None:
    """Start a QR-linked session on its gateway, print the QR code and wait until linked.

    Scan it with the phone: WhatsApp, Settings, Linked devices, Link a device. A new
    code is printed whenever WhatsApp rotates it. Exit code 0 once connected, 3 on
    giving up.
    """

    async def work(ctx: AppContext) -> LinkOut:
        owner = await _owner_of_session(ctx, session_id)
        link = await linking.connect_session(ctx, owner, session_id)
        shown: str | None = None
        deadline = asyncio.get_running_loop().time() + timeout
        while link.state != "connected":
            if link.qr is not None and link.qr.text != shown:
                shown = link.qr.text
                _print_qr(shown)
                typer.echo("Scan it: WhatsApp > Settings > Linked devices > Link a device.")
            elif link.qr is None and link.state != "qr":
                typer.echo(f"{link.state}: {link.detail or 'waiting'}", err=True)
            if asyncio.get_running_loop().time() > deadline:
                return link
            await asyncio.sleep(POLL_S)
            link = await linking.link_state(ctx, owner, session_id)
        return link

    link = _run(work)
    if link.state != "connected":
        typer.echo(f"error: not linked within {timeout:g} s (state {link.state})", err=True)
        raise typer.Exit(3)
    typer.echo(json.dumps({"session_id": session_id, "state": link.state, "me": link.me}))


@session_app.command("logout")
def logout(session_id: Annotated[str, typer.Argument(help="A Baileys session")]) -> None:
    """Unlink the session's phone; connecting again needs a new QR code."""

    async def work(ctx: AppContext) -> LinkOut:
        owner = await _owner_of_session(ctx, session_id)
        return await linking.logout_session(ctx, owner, session_id)

    _print(_run(work))
