"""The ``wabroadcast`` command: database, tenants, server and demo."""

from __future__ import annotations

import asyncio
import gc
import json
import signal
from pathlib import Path
from typing import Annotated

import httpx
import typer
from pydantic import ValidationError

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
from wabroadcast.db.engine import Database
from wabroadcast.domain.errors import AppError
from wabroadcast.observability.logging import configure_logging
from wabroadcast.providers.registry import PLUGINS
from wabroadcast.tenants.service import create_tenant

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


def require_secret_key(settings: Settings) -> None:
    """Refuse to start without the key that reads provider secrets (made on SQLite)."""
    load_secret_box(settings)


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
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=GATEWAY_DIR, check=True)  # noqa: S603
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
        serve_process_metrics(metrics_port, metrics_host)

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
        recipients += api.read_csv_recipients(csv_file)
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
            except api.ApiError as exc:
                console.print(f"[red]{exc}[/]")
                return 1
            console.print_json(data={k: v for k, v in proof.items() if k != "items"})
            if wait:
                state = await api.follow(http, console, proof["broadcast_id"])
                await api.print_summary(http, console, state)
                if state["status"] == "paused":
                    return 2
        return 0

    raise typer.Exit(asyncio.run(run()))


@app.command()
def demo(
    port: Annotated[int | None, typer.Option(help="Port. Default: WABROADCAST_PORT.")] = None,
) -> None:
    """Start the server, create a demo tenant, post a demo broadcast, keep serving."""
    from wabroadcast.demo import run_demo

    asyncio.run(run_demo(port))


def main() -> None:
    """Run the CLI; an error a person can act on is one line on stderr, not a traceback."""
    try:
        app()
    except AppError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise SystemExit(1) from None
    except (SecretKeyMissing, SecretsUnreadable) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "input"
        typer.echo(f"error: {where}: {first.get('msg', 'invalid')}", err=True)
        raise SystemExit(1) from None
