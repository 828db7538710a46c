"""Evolution API v2: a self-hosted WhatsApp Web gateway (a phone paired by QR code).

Everything wabroadcast knows of this provider is the ``PLUGIN`` record below:
its config, its HTTP adapter, the webhook it registers with Evolution when a
session is saved, and its webhooks (one URL per session, authenticated by the
secret header wabroadcast registered). WhatsApp Web gateways get numbers
banned when they send fast, hence the slow default pace and one send in flight.
"""

from __future__ import annotations

from wabroadcast.providers.common import WHATSAPP_WEB_CAPS, WHATSAPP_WEB_PACE, keyed_by_session_id
from wabroadcast.providers.evolution.config import SECRET_FIELDS, EvolutionConfig
from wabroadcast.providers.evolution.inbound import inbound
from wabroadcast.providers.evolution.provider import KIND, EvolutionProvider
from wabroadcast.providers.evolution.setup import register_webhook
from wabroadcast.providers.evolution.webhook import SECRET_HEADER, parse, routing_keys
from wabroadcast.providers.plugin import ProviderPlugin, WebhookSpec

PLUGIN = ProviderPlugin(
    kind=KIND,
    title="Evolution API",
    build=lambda deps: EvolutionProvider(),
    config_model=EvolutionConfig,
    secret_fields=SECRET_FIELDS,
    default_pace=WHATSAPP_WEB_PACE,
    daily_cap_preset=lambda config: WHATSAPP_WEB_CAPS,
    default_max_concurrency=1,
    webhook_key=keyed_by_session_id,
    webhook=WebhookSpec(
        routing_keys=routing_keys,
        parse=parse,
        per_session_url=True,
        headers={
            SECRET_HEADER: "the session's webhook secret, which wabroadcast registered with "
            "Evolution (`webhook/set`) when the session was saved.",
        },
        inbound=inbound,
    ),
    prepare_session=register_webhook,
    summary=(
        "Your own Evolution API server, with a phone paired by QR code: "
        "a WhatsApp Web gateway, paced slowly against bans."
    ),
    form_fields=("base_url", "instance", "api_key"),
)

__all__ = ["PLUGIN", "EvolutionConfig", "EvolutionProvider"]
