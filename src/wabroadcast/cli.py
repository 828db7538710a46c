"""The ``wabroadcast`` command: database, tenants, server and demo."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import httpx
import typer
from alembic.util import CommandError
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

# Typer (pinned) carries its own copy of click; its usage errors are these.
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from wabroadcast.cli_sessions import ConfigFile, ConfigPairs, read_config, session_app
from wabroadcast.clock import SystemClock
from wabroadcast.config import Settings, get_settings
from wabroadcast.crypto import (
    LazySecretBox,
    SecretKeyMissing,
    SecretsUnreadable,
    load_secret_box,
    new_key,
)
from wabroadcast.db import migrate
from wabroadcast.db.engine import Database, display_url
from wabroadcast.domain.errors import AppError, NotFound
from wabroadcast.observability.logging import configure_logging
from wabroadcast.providers.registry import PLUGINS
from wabroadcast.tenants.service import (
    MAX_GRACE,
    TenantSummary,
    create_tenant,
    list_tenants,
    rotate_api_key,
)

app = typer.Typer(
    help="wabroadcast: one WhatsApp message to many recipients, reliably.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants (businesses) and their API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")
app.add_typer(session_app, name="session")


class _Options:
    """Options given before the command (``wabroadcast --debug tenant list``)."""

    debug = False


OPTIONS = _Options()


@app.callback()
def global_options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="WABROADCAST_DEBUG",
            help="On an error, show Python's traceback instead of the one-line message.",
        ),
    ] = False,
) -> None:
    """wabroadcast: one WhatsApp message to many recipients, reliably."""
    OPTIONS.debug = debug


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Create or migrate the schema at WABROADCAST_DATABASE_URL."""
    url = get_settings().database_url
    migrate.upgrade(url, revision)
    typer.echo(f"database at revision {migrate.current_revision(url)}")


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
    typer.echo(json.dumps(created))


GRACE_FORMS = "0, or a whole number of s, m, h or d (90s, 30m, 24h, 7d)"
_SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


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
    duration = timedelta(seconds=int(match[1]) * _SECONDS_PER_UNIT[match[2]])
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
        raise NotFound(
            f"there is no tenant {tenant_id}; `wabroadcast tenant list` lists the tenants",
            details=exc.details,
        ) from exc
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
        typer.echo(json.dumps([_tenant_json(t) for t in tenants], indent=2))
    elif tenants:
        typer.echo(_tenant_table(tenants))
    else:
        typer.echo("no tenants yet: `wabroadcast tenant create --name NAME` makes one", err=True)


class CommandFailed(Exception):
    """A problem this command explains itself, in one line."""


def require_secret_key(settings: Settings) -> None:
    """Refuse to start without the key that reads provider secrets (made on SQLite)."""
    try:
        load_secret_box(settings)
    except OSError as exc:  # the key file beside a SQLite database
        where = f"{exc.filename}: {exc.strerror or exc}"
        raise CommandFailed(
            f"cannot keep the secret key beside the database at "
            f"{display_url(settings.database_url)} ({where}); check WABROADCAST_DATABASE_URL "
            "or set WABROADCAST_SECRET_KEY"
        ) from exc


# The Baileys gateway's folder in a wabroadcast checkout (it is the project's one Node part).
GATEWAY_DIR = Path(__file__).resolve().parents[2] / "gateway"


@app.command("gateway")
def gateway_command() -> None:
    """Run the Baileys gateway (gateway/, Node 20), installing it with npm ci when needed.

    It reads WABROADCAST_GATEWAY_TOKEN (required), WABROADCAST_GATEWAY_PORT (8790),
    WABROADCAST_GATEWAY_HOST (127.0.0.1) and WABROADCAST_GATEWAY_DATA (./gateway-data).
    """
    import os
    import shutil
    import subprocess

    if not (GATEWAY_DIR / "package.json").exists():
        typer.echo(
            f"error: the gateway's files are not at {GATEWAY_DIR}: run it from a wabroadcast "
            "checkout (make gateway)",
            err=True,
        )
        raise typer.Exit(2)
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        typer.echo("error: the gateway needs Node 20 and npm on the PATH", err=True)
        raise typer.Exit(2)
    if not (GATEWAY_DIR / "node_modules").exists():
        # Our own lockfile's packages, from the configured npm registry.
        installed = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=GATEWAY_DIR)  # noqa: S603
        if installed.returncode != 0:
            raise CommandFailed(
                f"`npm ci` in {GATEWAY_DIR} failed (exit code {installed.returncode}, its output "
                "is above); fix what it says and run `wabroadcast gateway` again"
            )
    os.execv(node, [node, str(GATEWAY_DIR / "src" / "server.js")])  # noqa: S606


@app.command("secret-key")
def secret_key() -> None:
    """Print a new key for WABROADCAST_SECRET_KEY (encrypts provider secrets at rest)."""
    typer.echo(new_key())


def tune_gc() -> None:
    """Fewer, cheaper garbage collections for a process that allocates in bursts.

    One 100,000-recipient request allocates several hundred thousand short-lived
    objects; with the default thresholds that triggers hundreds of collections
    that each rescan everything imported at startup (measured: about a fifth of
    the ingest time). Startup objects are frozen out of the scans and the young
    generation is allowed to grow larger before it is collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address. Default: WABROADCAST_HOST.")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port. Default: WABROADCAST_PORT.")] = None,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="Also run a dispatcher in this process (turn off when workers run apart).",
        ),
    ] = True,
) -> None:
    """Run the HTTP API (migrating the database first), with an embedded worker by default."""
    import uvicorn

    from wabroadcast.api.app import build_context, create_app

    # The address given here is the one the app knows too (webhook URLs are built from it).
    settings = get_settings().model_copy(
        update={"host": host or get_settings().host, "port": port or get_settings().port}
    )
    configure_logging(settings.log_format, settings.log_level)
    require_secret_key(settings)
    migrate.upgrade(settings.database_url)
    tune_gc()
    uvicorn.run(
        create_app(build_context(settings), run_worker=worker),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
    )


@app.command("worker")
def worker_command(
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Serve this process's Prometheus metrics at http://HOST:PORT/metrics "
            "(for workers that share no PROMETHEUS_MULTIPROC_DIR with a `serve`).",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="Bind address of --metrics-port.")
    ] = "127.0.0.1",
) -> None:
    """Run a dispatcher: send queued recipients until SIGTERM or Ctrl+C.

    Run as many as you like, on as many machines as share the database: each
    session's sends stay within its max_concurrency and pace across all of them.
    """
    from wabroadcast.api.app import build_context
    from wabroadcast.dispatch.dispatcher import Dispatcher
    from wabroadcast.observability.prometheus import serve_process_metrics

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    require_secret_key(settings)
    migrate.upgrade(settings.database_url)
    tune_gc()
    if metrics_port is not None:
        try:
            serve_process_metrics(metrics_port, metrics_host)
        except OSError as exc:
            raise CommandFailed(
                f"cannot serve metrics at {metrics_host}:{metrics_port}: "
                f"{exc.strerror or exc}; choose another --metrics-port"
            ) from exc

    async def run() -> None:
        ctx = build_context(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await Dispatcher(ctx).run(stop)
        finally:
            await ctx.database.dispose()

    asyncio.run(run())


@app.command()
def send(
    message: Annotated[str, typer.Option(help="The text to send.")],
    to: Annotated[
        list[str] | None, typer.Option("--to", help="A recipient's phone; repeat for more.")
    ] = None,
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv", exists=True, dir_okay=False, help="CSV with a phone column (lead_id, name)."
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            help="Follow the progress until the broadcast ends (or is paused: exit code 2)."
        ),
    ] = False,
    url: Annotated[
        str, typer.Option(envvar="WABROADCAST_URL", help="The wabroadcast server.")
    ] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str | None, typer.Option(envvar="WABROADCAST_API_KEY", help="The tenant's API key.")
    ] = None,
    session_id: Annotated[str | None, typer.Option(help="Default: the tenant's default.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Makes retrying this command safe.")
    ] = None,
) -> None:
    """Post a broadcast through the API and print its proof; --wait follows it to the end."""
    from rich.console import Console

    from wabroadcast import client as api

    console = Console()
    if not api_key:
        raise typer.BadParameter(
            "give --api-key or set WABROADCAST_API_KEY", param_hint="--api-key"
        )
    recipients: list[object] = list(to or [])
    if csv_file is not None:
        try:
            recipients += api.read_csv_recipients(csv_file)
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(f"{csv_file}: not a UTF-8 text file ({exc})") from None
    if not recipients:
        raise typer.BadParameter("give --to PHONE (repeatable) or --csv FILE", param_hint="--to")
    body: dict[str, object] = {"message": message, "recipients": recipients}
    if session_id:
        body["session_id"] = session_id

    async def run() -> int:
        headers = {"Authorization": f"Bearer {api_key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            try:
                proof = await api.post_broadcast(http, body, idempotency_key)
                console.print_json(data={k: v for k, v in proof.items() if k != "items"})
                if wait:
                    state = await api.follow(http, console, proof["broadcast_id"])
                    await api.print_summary(http, console, state)
                    if state["status"] == "paused":
                        return 2
            except api.ApiError as exc:
                typer.echo(f"error: {_one_line(str(exc))}", err=True)
                return 1
            except httpx.HTTPError as exc:
                reason = _one_line(str(exc)) or type(exc).__name__
                typer.echo(f"error: no answer from the server at {url}: {reason}", err=True)
                return 1
        return 0

    raise typer.Exit(asyncio.run(run()))


@app.command()
def demo(
    port: Annotated[int | None, typer.Option(help="Port. Default: WABROADCAST_PORT.")] = None,
) -> None:
    """Start the server, create a demo tenant, post a demo broadcast, keep serving."""
    from wabroadcast.demo import run_demo

    asyncio.run(run_demo(port))


def _one_line(text: str, limit: int = 600) -> str:
    """``text`` on one line (whitespace runs, newlines included, as one space), cut short."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _database_url() -> str | None:
    try:
        return get_settings().database_url
    except ValidationError:
        return None


def _database_problem(exc: DBAPIError) -> str:
    """What went wrong with the database, naming its URL (password hidden)."""
    url = _database_url()
    reason = _one_line(str(exc.orig) if exc.orig is not None else str(exc))
    shown = "the database" if url is None else f"the database at {display_url(url)}"
    if url is not None:
        try:
            parsed = make_url(url)
        except ArgumentError:
            parsed = None
        if parsed is not None and parsed.password:
            reason = reason.replace(str(parsed.password), "***")
        if parsed is not None and parsed.get_backend_name() == "sqlite" and parsed.database:
            folder = Path(parsed.database).parent
            if not folder.is_dir():
                reason += f" (the folder {folder} does not exist)"
    if exc.statement is None:  # raised while connecting
        return f"cannot connect to {shown}: {reason}; check WABROADCAST_DATABASE_URL"
    return f"{shown} refused a query: {reason}; check WABROADCAST_DATABASE_URL"


def _validation_problem(exc: ValidationError) -> str:
    first = exc.errors(include_input=False, include_url=False)[0]
    loc = [str(part) for part in first.get("loc", ())]
    where = ".".join(loc) or "input"
    if exc.title == "Settings" and loc:  # read from the environment
        where = f"WABROADCAST_{loc[0].upper()}"
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}"


def _usage_error(exc: UsageError) -> None:
    """A usage error as click shows it (usage lines, then the problem), ours in its wording."""
    if isinstance(exc, NoArgsIsHelpError):
        if exc.format_message().strip():  # without Rich; Rich has printed the help already
            exc.show()
        return
    if exc.ctx is not None:
        typer.echo(exc.ctx.get_usage(), err=True)
        typer.echo(f"Try '{exc.ctx.command_path} --help' for help.", err=True)
    typer.echo(f"error: {_one_line(exc.format_message())}", err=True)


def _problem(exc: Exception) -> tuple[str, int]:
    """One line saying what went wrong (and what to do), and the exit code."""
    if isinstance(exc, AppError):
        return exc.message, 1
    if isinstance(exc, CommandFailed):
        return str(exc), 1
    if isinstance(exc, (SecretKeyMissing, SecretsUnreadable)):
        return str(exc), 2
    if isinstance(exc, ValidationError):
        return _validation_problem(exc), 1
    if isinstance(exc, DBAPIError):
        return _database_problem(exc), 1
    if isinstance(exc, CommandError):  # Alembic: an unknown revision, say
        return f"migration: {exc}", 1
    if isinstance(exc, OSError) and exc.filename is not None:
        message = f"{exc.filename}: {exc.strerror or exc}"
        folder = Path(str(exc.filename)).parent
        if not folder.is_dir():
            message += f" (the folder {folder} does not exist)"
        return message, 1
    if isinstance(exc, typer.TyperException):
        return exc.format_message(), exc.exit_code
    return (
        f"unexpected {type(exc).__name__}: {exc}; run `wabroadcast --debug ...` "
        "for the traceback, and report it if it persists",
        1,
    )


def main() -> None:
    """Run the CLI; an error is one line on stderr (``--debug``: the traceback), never both."""
    try:
        code = app(prog_name="wabroadcast", standalone_mode=False)
    except UsageError as exc:
        _usage_error(exc)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        raise SystemExit(1) from None
    except Exception as exc:
        if OPTIONS.debug:
            raise
        message, code = _problem(exc)
        typer.echo(f"error: {_one_line(message)}", err=True)
        raise SystemExit(code) from None
    raise SystemExit(code if isinstance(code, int) else 0)
