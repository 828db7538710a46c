"""What an Evolution API session is configured with, validated before it is stored.

The model is the only description of the settings: the session form, the CLI
and the docs show its field descriptions, and ``SECRET_FIELDS`` tells storage
which values to encrypt and never return. Validators reject bad values with
messages that never repeat the value, since ``api_key`` is a secret.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Stored encrypted and never shown again once saved.
SECRET_FIELDS = frozenset({"api_key"})
INSTANCE_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


class EvolutionConfig(BaseModel):
    """The settings of one WhatsApp number paired with an Evolution API v2 instance."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        min_length=1,
        max_length=512,
        description=(
            "Where your Evolution API server answers, such as https://evo.example.com "
            "(its SERVER_URL)."
        ),
    )
    # Printable ASCII without spaces: it goes into an HTTP header as it is.
    api_key: str = Field(
        min_length=1,
        max_length=512,
        pattern=r"^[\x21-\x7e]+$",
        description=(
            "Evolution's global API key (AUTHENTICATION_API_KEY) or the instance's token, "
            "sent as the apikey header."
        ),
    )
    # ``[A-Za-z0-9]``, not ``\w``: pydantic's regex engine counts every Unicode letter as ``\w``.
    instance: str = Field(
        min_length=1,
        max_length=64,
        pattern=INSTANCE_PATTERN,
        description=(
            "The name of the instance in Evolution's manager that the phone is paired with "
            "(letters, digits, '_', '.' and '-')."
        ),
    )

    @field_validator("base_url")
    @classmethod
    def _http_url_without_trailing_slash(cls, value: str) -> str:
        """Accept only an http(s) URL with a host and no credentials; drop trailing slashes."""
        if any(character.isspace() or not character.isprintable() for character in value):
            raise ValueError("the Evolution URL must not contain spaces or control characters")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError("the Evolution URL is not a valid URL") from None
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(
                "the Evolution URL must start with http:// or https:// and name a host"
            )
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "the Evolution URL must not contain a user name or password; "
                "the API key goes in api_key"
            )
        if parts.query or parts.fragment:
            raise ValueError("the Evolution URL must not have a query or a fragment")
        return value.rstrip("/")

    @field_validator("instance")
    @classmethod
    def _not_only_dots(cls, value: str) -> str:
        """``.`` and ``..`` would change the path of every call, not name an instance."""
        if not value.strip("."):
            raise ValueError("the instance name must not be only dots")
        return value
