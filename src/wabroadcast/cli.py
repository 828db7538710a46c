"""The ``wabroadcast`` command: database, server, worker, gateway and demo.

The tenant commands are in ``cli_tenants``, the session commands in ``cli_sessions``,
and how a failing command reports itself (``error: ...``, ``--debug``) in ``cli_errors``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from pathlib import Path
from typing import Annotated

import httpx
import typer

from wabroadcast import cli_errors
from wabroadcast.cli_broadcasts import broadcasts_app
from wabroadcast.cli_errors import OPTIONS, CommandFailed, one_line
from wabroadcast.cli_sessions import session_app
from wabroadcast.cli_tenants import tenant_app
from wabroadcast.config import Settings, get_settings
from wabroadcast.crypto import load_secret_box, new_key
from wabroadcast.db import migrate
from wabroadcast.db.engine import display_url
from wabroadcast.domain.errors import ValidationFailed
from wabroadcast.observability.logging import configure_logging

app = typer.Typer(
    help="wabroadcast: one WhatsApp message to many recipients, reliably.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")
app.add_typer(session_app, name="session")
app.add_typer(broadcasts_app, name="broadcasts")
# The server's default region (Settings.default_region); `send --csv` uses it to find a
# phone column whose header it does not know.
REGION_ENV = "WABROADCAST_DEFAULT_REGION"


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
    message: Annotated[
        str,
        typer.Option(
            help=(
                "The text to send; {{name}}, {{lead_id}}, {{x}} (a CSV column) and "
                '{{name|default("friend")}} are filled in per recipient.'
            )
        ),
    ],
    to: Annotated[
        list[str] | None, typer.Option("--to", help="A recipient's phone; repeat for more.")
    ] = None,
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            exists=True,
            dir_okay=False,
            help=(
                "CSV (, ; or tab) with a phone column, and optional name and lead_id columns; "
                "the other columns are variables for the message ({{City}})."
            ),
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            help=(
                "Follow the progress until the broadcast ends; exit code 3 if it ends "
                "partial or failed, 2 if it is paused."
            )
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the API's JSON (the proof, the final state).")
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
    strict_variables: Annotated[
        bool,
        typer.Option(help="Refuse the broadcast if a recipient lacks a field the message uses."),
    ] = False,
    quiet_hours: Annotated[
        str | None,
        typer.Option(
            metavar="HH:MM-HH:MM",
            help="This broadcast's quiet hours (e.g. 21:00-08:30), or off; default: the tenant's.",
        ),
    ] = None,
    quiet_hours_zone: Annotated[
        str | None,
        typer.Option(help="tenant (default) or recipient: each number's zone from its country."),
    ] = None,
) -> None:
    """Post a broadcast through the API and print its proof; --wait follows it to the end."""
    from rich.console import Console

    from wabroadcast import cli_broadcasts
    from wabroadcast import client as api

    console = Console()
    if not api_key:
        raise typer.BadParameter(
            "give --api-key or set WABROADCAST_API_KEY", param_hint="--api-key"
        )
    recipients: list[object] = list(to or [])
    if csv_file is not None:
        try:
            recipients += api.read_csv_recipients(csv_file, os.environ.get(REGION_ENV, "IL"))
        except OSError as exc:
            raise typer.BadParameter(f"{csv_file}: cannot be read ({exc})") from None
        except ValidationFailed as exc:
            raise typer.BadParameter(f"{csv_file}: {exc.message.removeprefix('file: ')}") from None
    if not recipients:
        raise typer.BadParameter("give --to PHONE (repeatable) or --csv FILE", param_hint="--to")
    body: dict[str, object] = {"message": message, "recipients": recipients}
    if session_id:
        body["session_id"] = session_id
    if strict_variables:
        body["strict_variables"] = True
    if quiet_hours is not None:
        body["quiet_hours"] = quiet_hours
    if quiet_hours_zone is not None:
        body["quiet_hours_zone"] = quiet_hours_zone

    async def run() -> int:
        headers = {"Authorization": f"Bearer {api_key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            try:
                proof = await api.post_broadcast(http, body, idempotency_key)
                if as_json:
                    cli_broadcasts.echo_json(proof)
                else:
                    typer.echo("\n".join(cli_broadcasts.proof_lines(proof, message)))
                if wait:
                    if as_json:
                        state = await cli_broadcasts.wait_quietly(http, proof["broadcast_id"])
                        cli_broadcasts.echo_json(state)
                    else:
                        state = await api.follow(http, console, proof["broadcast_id"])
                        await api.print_summary(http, console, state)
                    return cli_broadcasts.exit_code_of(state["status"])
            except api.ApiError as exc:
                typer.echo(f"error: {one_line(str(exc))}", err=True)
                return 1
            except httpx.HTTPError as exc:
                reason = one_line(str(exc)) or type(exc).__name__
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


def main() -> None:
    """Run the CLI; an error is one line on stderr (``--debug``: the traceback), never both."""
    cli_errors.run(app, prog_name="wabroadcast")
