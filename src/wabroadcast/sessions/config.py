"""A session's provider config: validated by its provider, secrets kept apart and encrypted.

Secrets are write-only: what is shown of them is ``mask``; the provider gets the
whole config, decrypted, in its ``SessionRef`` (``SessionRefs`` decrypts once per
version, since the dispatcher needs it for every call).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from wabroadcast.db.models import WhatsAppSession
from wabroadcast.domain.errors import ValidationFailed
from wabroadcast.providers.base import SessionRef
from wabroadcast.providers.plugin import ProviderPlugin

MASK = "…"
# A secret shows its last characters only when it is long enough to keep the rest.
SHOWN_TAIL = 4
MIN_LENGTH_TO_SHOW_TAIL = 12


class SecretReader(Protocol):
    def encrypt(self, values: Mapping[str, str]) -> str: ...

    def decrypt(self, token: str) -> dict[str, str]: ...


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session as services see it; ``ref`` decrypts its config for the provider."""

    session_id: str
    tenant_id: int
    provider: str
    max_concurrency: int
    rate_per_minute: float | None
    jitter_ms: int | None
    config: Mapping[str, object]
    secret_config: str | None
    webhook_secret: str

    def ref(self, box: SecretReader) -> SessionRef:
        return SessionRef(
            self.session_id,
            self.tenant_id,
            self.provider,
            full_config(self.config, self.secret_config, box),
            self.webhook_secret,
        )


def session_info(row: WhatsAppSession) -> SessionInfo:
    return SessionInfo(
        session_id=row.id,
        tenant_id=row.tenant_id,
        provider=row.provider,
        max_concurrency=row.max_concurrency,
        rate_per_minute=row.rate_per_minute,
        jitter_ms=row.jitter_ms,
        config=dict(row.config or {}),
        secret_config=row.secret_config,
        webhook_secret=row.webhook_secret,
    )


def full_config(
    plain: Mapping[str, object], secret_config: str | None, box: SecretReader
) -> dict[str, object]:
    """The plain fields and the decrypted secrets, as the provider's model dumps them."""
    config: dict[str, object] = dict(plain)
    if secret_config:
        config.update(box.decrypt(secret_config))
    return config


class SessionRefs:
    """The ``SessionRef`` of a session row, its secrets decrypted once per version.

    The dispatcher needs a session's config for every provider call; decrypting
    it each time would cost more than the call.
    """

    def __init__(self, box: SecretReader) -> None:
        self._box = box
        self._cache: dict[str, tuple[tuple[object, ...], SessionRef]] = {}

    def of(self, row: WhatsAppSession) -> SessionRef:
        version = (row.tenant_id, row.provider, row.config, row.secret_config, row.webhook_secret)
        cached = self._cache.get(row.id)
        if cached is not None and cached[0] == version:
            return cached[1]
        ref = session_info(row).ref(self._box)
        self._cache[row.id] = (version, ref)
        return ref


def validate_config(plugin: ProviderPlugin, raw: Mapping[str, Any]) -> dict[str, object]:
    """The config as the provider's model accepts it (defaults filled); a 422 naming the
    field otherwise, which never repeats what was given (it may be a secret)."""
    try:
        model = plugin.config_model.model_validate(dict(raw))
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(["config", *(str(p) for p in err.get("loc", ()))]),
                "message": str(err.get("msg", "invalid")),
                "type": str(err.get("type", "value_error")),
            }
            for err in exc.errors(include_input=False, include_url=False)[:50]
        ]
        first = errors[0]
        raise ValidationFailed(
            f"{first['field']}: {first['message']}",
            details={"errors": errors, "error_count": len(errors), "provider": plugin.kind},
        ) from None
    return dict(model.model_dump(mode="json"))


def split_secrets(
    plugin: ProviderPlugin, config: Mapping[str, object]
) -> tuple[dict[str, object], dict[str, str]]:
    plain = {k: v for k, v in config.items() if k not in plugin.secret_fields}
    hidden = {k: str(v) for k, v in config.items() if k in plugin.secret_fields and v is not None}
    return plain, hidden


def mask(secret: str) -> str:
    if len(secret) < MIN_LENGTH_TO_SHOW_TAIL:
        return MASK
    return MASK + secret[-SHOWN_TAIL:]
