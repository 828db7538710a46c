"""What an Evolution API session is configured with, validated before it is stored.

The model is the only description of the settings: the session form, the CLI
and the docs show its field descriptions, and ``SECRET_FIELDS`` tells storage
which values to encrypt and never return. Validators reject bad values with
messages that never repeat the value, since ``api_key`` is a secret.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wabroadcast.providers.common import HEADER_SAFE_PATTERN, http_url_parts, no_query

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
        pattern=HEADER_SAFE_PATTERN,
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
        parts = http_url_parts(value, "the Evolution URL")
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "the Evolution URL must not contain a user name or password; "
                "the API key goes in api_key"
            )
        no_query(parts, "the Evolution URL")
        return value.rstrip("/")

    @field_validator("instance")
    @classmethod
    def _not_only_dots(cls, value: str) -> str:
        """``.`` and ``..`` would change the path of every call, not name an instance."""
        if not value.strip("."):
            raise ValueError("the instance name must not be only dots")
        return value
