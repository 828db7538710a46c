"""Provider secrets at rest: encrypted with a Fernet key the database never holds.

Access tokens, app secrets and API keys are stored as one Fernet token per
session, so a dump of the database (or a backup) reveals none of them without
``WABROADCAST_SECRET_KEY``. On the embedded SQLite default the key is made once
and kept in a file beside the database; with PostgreSQL it must be given, so
that every API and worker process (on any machine) reads the same secrets.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.engine import make_url

from wabroadcast.config import Settings

HOW_TO_MAKE_ONE = (
    "make one with `wabroadcast secret-key` and set WABROADCAST_SECRET_KEY to it "
    "in every process's environment"
)


class SecretKeyMissing(RuntimeError):
    """No key to encrypt or decrypt provider secrets with."""


class SecretsUnreadable(RuntimeError):
    """Stored secrets that this key cannot decrypt (the key changed, or the data did)."""


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")


class SecretBox:
    """Encrypts and decrypts a session's secret fields as one token."""

    def __init__(self, key: str | bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError as exc:
            raise SecretKeyMissing(
                f"WABROADCAST_SECRET_KEY is not a Fernet key (32 url-safe base64 bytes); "
                f"{HOW_TO_MAKE_ONE}"
            ) from exc

    def encrypt(self, values: Mapping[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(dict(values)).encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> dict[str, str]:
        try:
            values = json.loads(self._fernet.decrypt(token.encode("ascii")))
        except (InvalidToken, ValueError) as exc:
            raise SecretsUnreadable(
                "a session's secrets cannot be decrypted with WABROADCAST_SECRET_KEY "
                "(was the key changed?)"
            ) from exc
        return {str(k): str(v) for k, v in values.items()}


def key_file_for(database_url: str) -> Path | None:
    """Where the embedded default keeps its key: beside the SQLite file (None otherwise)."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    return Path(f"{url.database}.key")


def _read_or_create(path: Path) -> str:
    """The key in ``path``, made there first (readable by its owner only) if absent."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(new_key() + "\n")
    return path.read_text(encoding="ascii").strip()


def load_secret_box(settings: Settings) -> SecretBox:
    """The box for this deployment's key; ``SecretKeyMissing`` says how to make one."""
    given = "" if settings.secret_key is None else settings.secret_key.get_secret_value().strip()
    if given:
        return SecretBox(given)
    path = key_file_for(settings.database_url)
    if path is None:
        raise SecretKeyMissing(
            f"WABROADCAST_SECRET_KEY is required with PostgreSQL: {HOW_TO_MAKE_ONE}"
        )
    return SecretBox(_read_or_create(path))


class LazySecretBox:
    """A ``SecretBox`` made on first use: a process that never touches a secret (the
    API of a simulator-only deployment, a test) needs no key; ``serve`` and
    ``worker`` ask for it at start with ``load_secret_box`` so they refuse early."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._box: SecretBox | None = None

    def _get(self) -> SecretBox:
        if self._box is None:
            self._box = load_secret_box(self._settings)
        return self._box

    def encrypt(self, values: Mapping[str, str]) -> str:
        return self._get().encrypt(values)

    def decrypt(self, token: str) -> dict[str, str]:
        return self._get().decrypt(token)
