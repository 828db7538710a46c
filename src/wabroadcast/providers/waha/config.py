"""What a WAHA session is configured with, validated before it is stored.

The model is the only description of the settings: the session form, the CLI
and the docs show its field descriptions, and ``SECRET_FIELDS`` tells storage
which values to encrypt and never return. Validators reject bad values with
messages that never repeat the value, since some fields are secrets.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_SESSION = "default"

# Stored encrypted and never shown again once saved.
SECRET_FIELDS = frozenset({"api_key", "hmac_key"})


class WahaConfig(BaseModel):
    """The settings of one WAHA session (one WhatsApp number paired in WAHA)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        min_length=1,
        max_length=512,
        description=(
            "Where your WAHA server is, such as http://waha.internal:3000 "
            "(without /api; wabroadcast adds the paths)."
        ),
    )
    # Printable ASCII without spaces: it goes into an HTTP header as it is.
    api_key: str = Field(
        min_length=1,
        max_length=512,
        pattern=r"^[\x21-\x7e]+$",
        description=(
            "WAHA's API key (the WAHA_API_KEY it runs with), sent as the X-Api-Key header."
        ),
    )
    session: str = Field(
        default=DEFAULT_SESSION,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description=(
            "The name of the session in WAHA that is paired with the number "
            "(WAHA Core only has 'default')."
        ),
    )
    hmac_key: str = Field(
        min_length=16,
        max_length=256,
        pattern=r"^[\x21-\x7e]+$",
        description=(
            "A random key of at least 16 characters that you also enter as the HMAC key of "
            "the WAHA session's webhook, so receipts can be checked as WAHA's."
        ),
    )

    @field_validator("base_url")
    @classmethod
    def _http_url_without_trailing_slash(cls, value: str) -> str:
        """Accept only an http(s) URL with a host; drop trailing slashes."""
        if any(character.isspace() or not character.isprintable() for character in value):
            raise ValueError("the WAHA URL must not contain spaces or control characters")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError("the WAHA URL is not a valid URL") from None
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("the WAHA URL must start with http:// or https:// and name a host")
        if parts.query or parts.fragment:
            raise ValueError("the WAHA URL must not have a query or a fragment")
        if parts.username is not None or parts.password is not None:
            raise ValueError("the WAHA URL must not carry a user name or password")
        return value.rstrip("/")
