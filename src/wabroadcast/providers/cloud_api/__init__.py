"""Meta's WhatsApp Cloud API: the official API for WhatsApp Business numbers.

Everything wabroadcast knows of this provider is the ``PLUGIN`` record below:
its config, its HTTP adapter and its webhooks (routed by phone number id and
signed with the Meta app's secret).
"""

from __future__ import annotations

from wabroadcast.providers.base import Pace
from wabroadcast.providers.cloud_api.config import (
    SECRET_FIELDS,
    CloudApiConfig,
    messaging_tier_caps,
)
from wabroadcast.providers.cloud_api.inbound import inbound
from wabroadcast.providers.cloud_api.provider import KIND, CloudApiProvider
from wabroadcast.providers.cloud_api.webhook import parse, routing_keys, verify_subscription
from wabroadcast.providers.plugin import ProviderPlugin, WebhookSpec

PLUGIN = ProviderPlugin(
    kind=KIND,
    title="Meta WhatsApp Cloud API",
    build=lambda deps: CloudApiProvider(),
    config_model=CloudApiConfig,
    secret_fields=SECRET_FIELDS,
    default_pace=Pace(rate_per_minute=3600, jitter_ms=0),
    default_max_concurrency=16,
    templates=True,
    daily_cap_preset=messaging_tier_caps,
    webhook_key=lambda session_id, config: str(config["phone_number_id"]),
    webhook=WebhookSpec(
        routing_keys=routing_keys,
        parse=parse,
        verify_subscription=verify_subscription,
        headers={
            "X-Hub-Signature-256": "`sha256=<hex HMAC-SHA256 of the raw body, keyed with the "
            "Meta app's secret>`.",
        },
        inbound=inbound,
    ),
    summary=(
        "Meta's official API: a WhatsApp Business number, templates outside the 24-hour window."
    ),
    form_fields=(
        "phone_number_id",
        "access_token",
        "app_secret",
        "verify_token",
        "api_version",
        "graph_base_url",
        "messaging_tier",
    ),
)

__all__ = ["PLUGIN", "CloudApiConfig", "CloudApiProvider"]
