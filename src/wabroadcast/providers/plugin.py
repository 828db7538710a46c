"""What one provider package registers: all the rest of wabroadcast knows of a provider.

A provider lives in one package, ``providers/<kind>/``, and hands the registry
one ``ProviderPlugin``: how to build it, its config model and which fields are
secrets, its default pace, how its webhooks find and authenticate a session,
and any work of its own (background passes, extra API routes). Nothing outside
the package names the provider; the dispatcher, receipts, sessions and the
dashboard ask the registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel

from wabroadcast.domain.daily_caps import NO_CAP, Preset
from wabroadcast.providers.base import InboundMessage, Pace, Provider, Receipt, SessionRef

if TYPE_CHECKING:
    from fastapi import APIRouter
    from sqlalchemy.ext.asyncio import AsyncSession

    from wabroadcast.clock import Clock
    from wabroadcast.config import Settings
    from wabroadcast.context import AppContext
    from wabroadcast.db.engine import Database


@dataclass(frozen=True, slots=True)
class ProviderDeps:
    """What a provider may be built with: one instance per kind per process."""

    database: Database
    clock: Clock
    settings: Settings


# The keys a webhook call names (untrusted: read before it is authenticated, only to
# find whose secret checks it), from its headers, raw body and the optional last
# path segment (``/api/whatsapp/webhooks/<kind>/<key>``).
RoutingKeys = Callable[[Mapping[str, str], bytes, str | None], list[str]]
# Authenticate a webhook call as the session's and decode what it reports for that
# session; raises ``WebhookSignatureInvalid`` (401) or ``WebhookBodyInvalid`` (400).
ParseWebhook = Callable[[SessionRef, Mapping[str, str], bytes], list[Receipt]]
# A provider's GET handshake when a webhook URL is registered (Meta's hub.challenge):
# the query parameters and the provider's sessions; the plain-text answer, or None
# for a 403.
VerifySubscription = Callable[[Mapping[str, str], Sequence[SessionRef]], str | None]


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    """How a provider's calls to ``/api/whatsapp/webhooks/<kind>`` are routed and checked."""

    routing_keys: RoutingKeys
    parse: ParseWebhook
    verify_subscription: VerifySubscription | None = None
    # The provider calls ``/api/whatsapp/webhooks/<kind>/<webhook key>``, not one URL.
    per_session_url: bool = False
    # For the API's documentation: the headers a call carries (name -> meaning) and
    # the model of its body, when the provider's document has one here.
    headers: Mapping[str, str] = field(default_factory=dict)
    body_model: type[BaseModel] | None = None
    # The messages people sent to the number that an authenticated call carries.
    inbound: Callable[[SessionRef, Mapping[str, str], bytes], list[InboundMessage]] | None = None


@dataclass(frozen=True, slots=True)
class ProviderPlugin:
    """One provider kind, as its package registers it."""

    kind: str
    title: str
    build: Callable[[ProviderDeps], Provider]
    # Validates a session's config; its dump (secrets included) is ``SessionRef.config``.
    config_model: type[BaseModel]
    # Fields of ``config_model`` that are secrets: stored encrypted, never returned.
    secret_fields: frozenset[str]
    default_pace: Pace
    default_max_concurrency: int
    # The key a session's webhooks are routed by (unique per kind), from its id and
    # config: e.g. the session id, or Meta's phone number id. None: no webhooks.
    webhook_key: Callable[[str, Mapping[str, object]], str | None]
    webhook: WebhookSpec | None = None
    # Called on every worker pass (e.g. the simulator's receipts); returns anything.
    background: Callable[[AppContext], Awaitable[object]] | None = None
    # Extra API routes of the provider's own (e.g. the simulator's scenario), built
    # when the app is (so the package imports no web code when it is loaded).
    router: Callable[[], APIRouter] | None = None
    # Called in the transaction that creates a session of this kind.
    on_session_created: Callable[[AsyncSession, Clock, str], Awaitable[None]] | None = None
    # Called when a session is added through the API, the CLI or the dashboard, or its
    # config changes, before it is stored: the session (config decrypted) and the URL
    # of its webhook, to tell the provider where to call (Evolution's webhook/set).
    # Raises ``ProviderSetupFailed`` (502; nothing is stored) when the provider refuses.
    prepare_session: Callable[[SessionRef, str], Awaitable[None]] | None = None
    # Whether a broadcast may carry a provider template (``OutgoingMessage.template``).
    templates: bool = False
    # The daily cap and warm-up of a session whose own are unset, from its config.
    daily_cap_preset: Callable[[Mapping[str, object]], Preset] = lambda config: NO_CAP
    # One line for the Sessions page and ``session create --help``.
    summary: str = ""
    # Config fields a form shows, in order (default: the model's fields).
    form_fields: Sequence[str] = field(default_factory=tuple)
