"""The provider's connection check before a broadcast is stored: refuse when it says
disconnected, go on (fail-open) when it cannot say in time.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from wabroadcast.context import AppContext
from wabroadcast.crypto import SecretKeyMissing, SecretsUnreadable
from wabroadcast.domain.errors import (
    WhatsAppNotConnected,
)
from wabroadcast.observability.logging import BROADCAST_TAG, get_logger
from wabroadcast.sessions.config import SessionInfo
from wabroadcast.texts import translate

log = get_logger("wabroadcast.broadcasts")


ConnectionCheck = Literal["connected", "unknown"]


async def check_connection(ctx: AppContext, wa_session: SessionInfo) -> ConnectionCheck:
    """Refuse when the provider says disconnected; go on (fail-open) when it cannot say."""
    provider = ctx.providers.for_kind(wa_session.provider)
    timeout = ctx.settings.connection_check_timeout_s
    try:
        status = await asyncio.wait_for(
            provider.connection_status(wa_session.ref(ctx.secrets)), timeout
        )
    except (SecretKeyMissing, SecretsUnreadable) as exc:
        # The provider cannot be called at all: as good as disconnected.
        log.error(
            f"{BROADCAST_TAG} rejected: the session's secrets cannot be read",
            broadcast_id=None,
            session_id=wa_session.session_id,
            error=str(exc),
        )
        raise WhatsAppNotConnected(
            translate("he", "api.not_connected"),
            details={"session_id": wa_session.session_id, "provider": wa_session.provider},
            extra={"message_en": translate("en", "api.not_connected")},
        ) from None
    except TimeoutError:
        log.warning(
            f"{BROADCAST_TAG} connection check timed out; accepting anyway",
            broadcast_id=None,
            session_id=wa_session.session_id,
            timeout_s=timeout,
        )
        return "unknown"
    except Exception as exc:
        log.warning(
            f"{BROADCAST_TAG} connection check failed; accepting anyway",
            broadcast_id=None,
            session_id=wa_session.session_id,
            error=repr(exc),
        )
        return "unknown"
    if not status.connected:
        log.warning(
            f"{BROADCAST_TAG} rejected",
            broadcast_id=None,
            session_id=wa_session.session_id,
            error_code=WhatsAppNotConnected.error_code,
            detail=status.detail,
        )
        raise WhatsAppNotConnected(
            translate("he", "api.not_connected"),
            details={"session_id": wa_session.session_id, "provider": wa_session.provider},
            extra={"message_en": translate("en", "api.not_connected")},
        )
    return "connected"
