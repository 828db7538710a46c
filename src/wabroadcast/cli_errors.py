"""How a ``wabroadcast`` command fails: one line on stderr, ``error: ...``, and an exit code.

``run`` runs the typer app; any exception becomes that one line (with what to do about
it), unless ``--debug`` asked for Python's traceback instead. Never both.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer
from alembic.util import CommandError
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

# Typer (pinned) carries its own copy of click; its usage errors are these.
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from wabroadcast.config import get_settings
from wabroadcast.crypto import SecretKeyMissing, SecretsUnreadable
from wabroadcast.db.engine import display_url
from wabroadcast.domain.errors import AppError


class _Options:
    """Options given before the command (``wabroadcast --debug tenant list``)."""

    debug = False


OPTIONS = _Options()


class CommandFailed(Exception):
    """A problem this command explains itself, in one line."""


def one_line(text: str, limit: int = 600) -> str:
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
    reason = one_line(str(exc.orig) if exc.orig is not None else str(exc))
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
    typer.echo(f"error: {one_line(exc.format_message())}", err=True)


def problem(exc: Exception) -> tuple[str, int]:
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


def run(app: typer.Typer, prog_name: str) -> NoReturn:
    """Run ``app``; an error is one line on stderr (``--debug``: the traceback), never both."""
    try:
        code = app(prog_name=prog_name, standalone_mode=False)
    except UsageError as exc:
        _usage_error(exc)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        raise SystemExit(1) from None
    except Exception as exc:
        if OPTIONS.debug:
            raise
        message, code = problem(exc)
        typer.echo(f"error: {one_line(message)}", err=True)
        raise SystemExit(code) from None
    raise SystemExit(code if isinstance(code, int) else 0)
