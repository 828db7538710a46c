"""Liveness (the process answers) and readiness (it can do its work).

Readiness asks the database for its migration revision: that one round trip
proves the database is reachable, and the answer proves the schema is the one
this code was written for. A process in front of an old or newer schema must
not receive traffic, so either is "not ready", never a guess.
"""

from __future__ import annotations

import asyncio
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from wabroadcast import __version__
from wabroadcast.db import migrate
from wabroadcast.domain.errors import NotReady
from wabroadcast.health.repository import HealthRepository
from wabroadcast.health.schemas import LiveOut, ReadyOut
from wabroadcast.observability.logging import get_logger

if TYPE_CHECKING:
    from wabroadcast.context import AppContext

log = get_logger("wabroadcast.health")

# A probe must answer before the orchestrator's own timeout (often 1-5 s).
READY_TIMEOUT_S = 3.0


@cache
def _head_revision() -> str | None:
    """The newest migration this code ships; read from the migration files once."""
    return migrate.head_revision()


def liveness() -> LiveOut:
    return LiveOut(version=__version__)


async def readiness(ctx: AppContext) -> ReadyOut:
    """Ready when the database answers within ``READY_TIMEOUT_S`` and is at the head revision."""
    head = _head_revision()
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            async with ctx.database.transaction() as db:
                applied = await HealthRepository(db).applied_revisions()
    except TimeoutError as exc:
        log.warning("not ready: database did not answer", timeout_s=READY_TIMEOUT_S)
        raise NotReady(
            f"The database did not answer within {READY_TIMEOUT_S:g} s",
            details={"database": "timeout"},
        ) from exc
    except (SQLAlchemyError, OSError) as exc:
        log.warning("not ready: database unreachable", error=type(exc).__name__)
        raise NotReady(
            "The database is unreachable",
            details={"database": "unreachable", "error": type(exc).__name__},
        ) from exc
    if head is None or applied != (head,):
        raise NotReady(
            "The database schema is not at the revision this version needs "
            "(if it is behind: `wabroadcast db upgrade`)",
            details={"database": "ok", "revision": list(applied), "head": head},
        )
    return ReadyOut(revision=head)
