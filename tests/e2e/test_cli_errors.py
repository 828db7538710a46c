"""Every ``wabroadcast`` error is one line on stderr saying what was wrong and what to do,
with a non-zero exit code and no traceback (``--debug`` shows it); database URLs work in
the forms people type. Real processes, like a person at a shell."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import cli
from tests.support.databases import IN_CI, create_pg_database, drop_pg_database, pg_unreachable
from wabroadcast import cli_errors

URL_FORMS = "use sqlite:///FILE or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
PASSWORD = "s3cret"
# Commands that open the database, with the arguments each needs.
DATABASE_COMMANDS = [
    ("db", "upgrade"),
    ("tenant", "create", "--name", "Shop"),
    ("tenant", "list"),
    ("tenant", "rotate-key", "1"),
    ("session", "list", "--tenant", "1"),
    ("session", "set", "shop_1", "--jitter-ms", "5"),
    ("serve",),
    ("worker",),
]
# Lets serve and worker get as far as the database.
SECRET_KEY = {"WABROADCAST_SECRET_KEY": "Zm9yLXRlc3RzLW9ubHktbm90LWEtcmVhbC1rZXktLS0="}


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed command printed on stderr (nothing else), checked."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def usage_error(result: subprocess.CompletedProcess[str]) -> str:
    """A usage error: the usage lines, then one line saying what was wrong."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("Usage: wabroadcast "), result.stderr
    assert lines[1].startswith("Try 'wabroadcast ")
    assert lines[1].endswith(" --help' for help.")
    assert len(lines) == 3, result.stderr
    assert lines[2].startswith("error: "), result.stderr
    return lines[2]


def _sqlite(tmp_path: Path, form: str = "sqlite") -> dict[str, str]:
    return {"WABROADCAST_DATABASE_URL": f"{form}:///{tmp_path / 'cli.db'}"}


@pytest.fixture
def pg_database_name() -> Iterator[str]:
    """A new, empty PostgreSQL database of this test's own."""
    problem = pg_unreachable()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI but unreachable: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    name = create_pg_database("wab_cli")
    yield name
    drop_pg_database(name)


# --- database URLs as people type them ------------------------------------------------


def test_sqlite_urls_as_typed_work_for_every_command(tmp_path: Path) -> None:
    env = _sqlite(tmp_path, "sqlite")
    upgraded = cli("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.startswith("database at revision ")
    created = cli("tenant", "create", "--name", "Shop", env=env)
    assert created.returncode == 0, created.stderr
    tenant = json.loads(created.stdout)
    listed = cli("tenant", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [t["tenant_id"] for t in json.loads(listed.stdout)] == [tenant["tenant_id"]]
    table = cli("tenant", "list", env=env)
    assert (table.returncode, "Shop" in table.stdout) == (0, True), table.stderr
    rotated = cli("tenant", "rotate-key", str(tenant["tenant_id"]), env=env)
    assert rotated.returncode == 0, rotated.stderr
    sessions = cli("session", "list", "--tenant", str(tenant["tenant_id"]), env=env)
    assert sessions.returncode == 0, sessions.stderr
    assert [s["session_id"] for s in json.loads(sessions.stdout)] == [tenant["session_id"]]

    pysqlite = _sqlite(tmp_path, "sqlite+pysqlite")
    created = cli("tenant", "create", "--name", "Other", env=pysqlite)
    assert created.returncode == 0, created.stderr
    listed = cli("tenant", "list", "--json", env=pysqlite)
    assert [t["name"] for t in json.loads(listed.stdout)] == ["Shop", "Other"]


@pytest.mark.postgres
def test_postgresql_urls_as_typed_work_for_every_command(pg_database_name: str) -> None:
    env = {
        "WABROADCAST_DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{pg_database_name}",
        **SECRET_KEY,
    }
    upgraded = cli("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    created = cli("tenant", "create", "--name", "Shop", env=env)
    assert created.returncode == 0, created.stderr
    tenant = json.loads(created.stdout)
    listed = cli("tenant", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [t["name"] for t in json.loads(listed.stdout)] == ["Shop"]
    rotated = cli("tenant", "rotate-key", str(tenant["tenant_id"]), "--grace", "0", env=env)
    assert rotated.returncode == 0, rotated.stderr
    sessions = cli("session", "list", "--tenant", str(tenant["tenant_id"]), env=env)
    assert sessions.returncode == 0, sessions.stderr

    for scheme in ("postgres", "postgresql+psycopg2"):
        url = f"{scheme}://postgres@127.0.0.1:5432/{pg_database_name}"
        listed = cli("tenant", "list", "--json", env={"WABROADCAST_DATABASE_URL": url})
        assert listed.returncode == 0, listed.stderr
        assert [t["name"] for t in json.loads(listed.stdout)] == ["Shop"]


def test_a_url_of_another_kind_names_the_accepted_forms_and_no_password() -> None:
    for url in (f"mysql://root:{PASSWORD}@127.0.0.1/shop", "sqlite"):
        line = one_line_error(cli("tenant", "list", env={"WABROADCAST_DATABASE_URL": url}))
        assert line.startswith("error: WABROADCAST_DATABASE_URL: ")
        assert URL_FORMS in line
        assert PASSWORD not in line


# --- a database that cannot be opened ---------------------------------------------------


def test_a_sqlite_file_in_a_missing_folder_is_one_line_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "no" / "such" / "folder"
    env = {"WABROADCAST_DATABASE_URL": f"sqlite:///{folder / 'x.db'}", **SECRET_KEY}
    for command in DATABASE_COMMANDS:
        line = one_line_error(cli(*command, env=env))
        assert f"sqlite+aiosqlite:///{folder / 'x.db'}" in line, command
        assert f"the folder {folder} does not exist" in line, command
        assert "WABROADCAST_DATABASE_URL" in line, command
    assert not folder.exists()


def test_serve_without_a_secret_key_beside_a_missing_folder_names_the_database(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "gone"
    env = {"WABROADCAST_DATABASE_URL": f"sqlite:///{folder / 'x.db'}"}
    for command in ("serve", "worker"):
        line = one_line_error(cli(command, env=env))
        assert f"sqlite+aiosqlite:///{folder / 'x.db'}" in line
        assert "WABROADCAST_SECRET_KEY" in line


def test_a_sqlite_file_that_is_not_a_database_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "cli.db").write_text("not a database\n" * 100)
    line = one_line_error(cli("tenant", "list", env=_sqlite(tmp_path)))
    assert f"the database at sqlite+aiosqlite:///{tmp_path / 'cli.db'}" in line
    assert "file is not a database" in line


def test_an_unreachable_postgresql_is_one_line_naming_the_url_without_its_password() -> None:
    env = {
        "WABROADCAST_DATABASE_URL": f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/shop",
        **SECRET_KEY,
    }
    for command in (("db", "upgrade"), ("tenant", "list"), ("worker",)):
        result = cli(*command, env=env)
        line = one_line_error(result)
        assert line.startswith(
            "error: cannot connect to the database at "
            "postgresql+psycopg://postgres:***@127.0.0.1:1/shop: "
        ), line
        assert PASSWORD not in result.stdout + result.stderr


@pytest.mark.postgres
def test_a_postgresql_database_that_does_not_exist_is_one_line_without_the_password(
    pg_database_name: str,
) -> None:
    env = {
        "WABROADCAST_DATABASE_URL": f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/nope_xyz",
        **SECRET_KEY,
    }
    for command in DATABASE_COMMANDS:
        result = cli(*command, env=env)
        line = one_line_error(result)
        assert "postgresql+psycopg://postgres:***@127.0.0.1:5432/nope_xyz" in line, command
        assert 'database "nope_xyz" does not exist' in line, command
        assert PASSWORD not in result.stdout + result.stderr


# --- mistakes in what was asked -----------------------------------------------------------


def test_unknown_things_are_named_with_where_to_find_the_right_ones(tmp_path: Path) -> None:
    env = _sqlite(tmp_path)
    provider = one_line_error(
        cli("session", "create", "--tenant", "1", "--provider", "wati", env=env)
    )
    assert "there is no tenant 1; `wabroadcast tenant list` lists the tenants" in provider
    tenant = json.loads(cli("tenant", "create", "--name", "Shop", env=env).stdout)
    provider = one_line_error(
        cli(
            "session", "create", "--tenant", str(tenant["tenant_id"]), "--provider", "wati", env=env
        )
    )
    assert "'wati' is not a known provider; valid: simulator, cloud_api, baileys" in provider

    for command in (("set", "nope", "--jitter-ms", "5"), ("show", "nope"), ("delete", "nope")):
        line = one_line_error(cli("session", *command, env=env))
        assert line == (
            "error: there is no WhatsApp session 'nope'; "
            "`wabroadcast session list --tenant TENANT_ID` lists a tenant's sessions"
        )
    no_tenant = one_line_error(cli("tenant", "rotate-key", "99", env=env))
    assert no_tenant == "error: there is no tenant 99; `wabroadcast tenant list` lists the tenants"
    revision = one_line_error(cli("db", "upgrade", "nope", env=env))
    assert "migration: Can't locate revision identified by 'nope'" in revision


def test_usage_errors_show_the_usage_then_one_line(tmp_path: Path) -> None:
    env = _sqlite(tmp_path)
    for grace in ("3x", "24", "1.5h"):
        line = usage_error(cli("tenant", "rotate-key", "1", "--grace", grace, env=env))
        assert f"'{grace}' is not a duration" in line
        assert "0, or a whole number of s, m, h or d (90s, 30m, 24h, 7d)" in line
    too_long = usage_error(cli("tenant", "rotate-key", "1", "--grace", "400d", env=env))
    assert "365d" in too_long
    assert "--tenant" in usage_error(cli("session", "list", "--tenant", "abc", env=env))
    assert "--name" in usage_error(cli("tenant", "create", "--nam", "x", env=env))
    assert not (tmp_path / "cli.db").exists()


def test_send_to_a_server_that_is_not_there_is_one_line() -> None:
    line = one_line_error(
        cli(
            "send",
            "--url",
            "http://127.0.0.1:1",
            "--api-key",
            "wab_x",
            "--message",
            "hi",
            "--to",
            "0502345678",
            env={},
        )
    )
    assert "cannot reach the server" in line


def test_send_with_a_csv_without_a_phone_column_names_its_columns(tmp_path: Path) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_bytes("Name;Email\nנועה;noa@example.com\n".encode())
    not_text = tmp_path / "latin.csv"
    not_text.write_bytes("phone\n0502345678\nשם".encode("cp1255"))
    args = ("send", "--url", "http://127.0.0.1:1", "--api-key", "wab_x", "--message", "hi")
    line = usage_error(cli(*args, "--csv", str(contacts), env={}))
    assert "no phone column found; columns seen: Name, Email" in line
    assert "cannot reach" not in line  # refused before anything is sent
    assert "must be UTF-8 or UTF-16 text" in usage_error(cli(*args, "--csv", str(not_text), env={}))


# --- --debug --------------------------------------------------------------------------------


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    env = _sqlite(tmp_path)
    for result in (
        cli("--debug", "session", "show", "nope", env=env),
        cli("session", "show", "nope", env={**env, "WABROADCAST_DEBUG": "1"}),
    ):
        assert result.returncode != 0
        assert result.stderr.startswith("Traceback (most recent call last):"), result.stderr
        assert "SessionNotFound: there is no WhatsApp session 'nope'" in result.stderr
    missing = tmp_path / "gone" / "x.db"
    database = cli(
        "--debug", "tenant", "list", env={"WABROADCAST_DATABASE_URL": f"sqlite:///{missing}"}
    )
    assert database.returncode != 0
    assert "Traceback" in database.stderr
    assert "OperationalError" in database.stderr


def test_an_unexpected_error_says_what_it_was_and_how_to_see_more() -> None:
    message, code = cli_errors.problem(RuntimeError("the disk\nis on fire"))
    assert code == 1
    assert message.startswith("unexpected RuntimeError: the disk")
    assert "wabroadcast --debug" in message
