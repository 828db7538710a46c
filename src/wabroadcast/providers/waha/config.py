"""What a WAHA session is configured with, validated before it is stored.

The model is the only description of the settings: the session form, the CLI
and the docs show its field descriptions, and ``SECRET_FIELDS`` tells storage
which values to encrypt and never return. Validators reject bad values with
messages that never repeat the value, since some fields are secrets.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wabroadcast.providers.common import HEADER_SAFE_PATTERN, http_url_parts, no_query

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
        pattern=HEADER_SAFE_PATTERN,
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
        pattern=HEADER_SAFE_PATTERN,
        description=(
            "A random key of at least 16 characters that you also enter as the HMAC key of "
            "the WAHA session's webhook, so receipts can be checked as WAHA's."
        ),
    )

    @field_validator("base_url")
    @classmethod
    def _http_url_without_trailing_slash(cls, value: str) -> str:
        """Accept only an http(s) URL with a host; drop trailing slashes."""
        parts = http_url_parts(value, "the WAHA URL")
        no_query(parts, "the WAHA URL")
        if parts.username is not None or parts.password is not None:
            raise ValueError("the WAHA URL must not carry a user name or password")
        return value.rstrip("/")
