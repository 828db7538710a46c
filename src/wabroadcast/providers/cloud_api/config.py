"""What a Cloud API session is configured with, validated before it is stored.

The model is the only description of the settings: the session form, the CLI
and the docs show its field descriptions, and ``SECRET_FIELDS`` tells storage
which values to encrypt and never return. Validators reject bad values with
messages that never repeat the value, since some fields are secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wabroadcast.domain.daily_caps import Preset
from wabroadcast.providers.common import HEADER_SAFE_PATTERN, http_url_parts, no_query

DEFAULT_API_VERSION = "v23.0"
DEFAULT_GRAPH_BASE_URL = "https://graph.facebook.com"

# Stored encrypted and never shown again once saved.
SECRET_FIELDS = frozenset({"access_token", "app_secret", "verify_token"})


class CloudApiConfig(BaseModel):
    """The settings of one WhatsApp Business phone number on Meta's Cloud API."""

    model_config = ConfigDict(extra="forbid")

    # ``[0-9]``, not ``\d``: pydantic's regex engine counts every Unicode digit as ``\d``.
    phone_number_id: str = Field(
        min_length=1,
        max_length=32,
        pattern=r"^[0-9]+$",
        description=(
            "The phone number ID from WhatsApp Manager (API Setup), digits only. "
            "It is not the phone number itself."
        ),
    )
    # Printable ASCII without spaces: it goes into an HTTP header as it is.
    access_token: str = Field(
        min_length=1,
        max_length=1024,
        pattern=HEADER_SAFE_PATTERN,
        description=(
            "A system user access token with the whatsapp_business_messaging permission, "
            "used to send messages."
        ),
    )
    app_secret: str = Field(
        min_length=1,
        max_length=256,
        description=(
            "The Meta app's secret (App settings, Basic). It checks that status webhooks "
            "really come from Meta."
        ),
    )
    verify_token: str = Field(
        min_length=1,
        max_length=256,
        description=(
            "A password you choose and also enter in the app's webhook settings, so Meta "
            "can confirm the webhook URL."
        ),
    )
    api_version: str = Field(
        default=DEFAULT_API_VERSION,
        pattern=r"^v[0-9]{1,3}\.[0-9]{1,2}$",
        description="The Graph API version to call, such as v23.0.",
    )
    graph_base_url: str = Field(
        default=DEFAULT_GRAPH_BASE_URL,
        min_length=1,
        max_length=512,
        description=(
            "Where the Graph API is. Leave the default unless you go through a proxy or a "
            "test server."
        ),
    )

    messaging_tier: Literal["250", "1K", "2K", "10K", "100K", "unlimited"] | None = Field(
        default=None,
        description=(
            "Your messaging limit tier (WhatsApp Manager, Insights): the session's daily "
            "cap unless daily_cap is set. Empty: no cap here; Meta enforces its own."
        ),
    )

    @field_validator("graph_base_url")
    @classmethod
    def _http_url_without_trailing_slash(cls, value: str) -> str:
        """Accept only an http(s) URL with a host; drop trailing slashes."""
        parts = http_url_parts(value, "the Graph API URL", check_port=False)
        no_query(parts, "the Graph API URL")
        return value.rstrip("/")


# Meta's messaging tiers: unique users reached outside a service window per 24 h
# (0: no limit).
MESSAGING_TIERS: dict[str, int] = {
    "250": 250,
    "1K": 1_000,
    "2K": 2_000,
    "10K": 10_000,
    "100K": 100_000,
    "unlimited": 0,
}


def messaging_tier_caps(config: Mapping[str, object]) -> Preset:
    """A Cloud API session's daily cap: its messaging tier's. Without a tier, none: Meta
    enforces the business portfolio's own limit, and a guess of ours would hold back a
    number that is allowed more."""
    tier = config.get("messaging_tier")
    return Preset(daily_cap=MESSAGING_TIERS.get(tier, 0) if isinstance(tier, str) else 0)
