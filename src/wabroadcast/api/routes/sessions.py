"""Session routes: a tenant's WhatsApp sessions, their provider config and connection state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from wabroadcast.api.deps import Ctx, CurrentTenant
from wabroadcast.api.routes import tenant_errors
from wabroadcast.domain.errors import (
    PayloadTooLarge,
    ProviderSetupFailed,
    SessionExists,
    SessionInUse,
    SessionNotFound,
    SessionNotLinkable,
    WebhookKeyInUse,
)
from wabroadcast.sessions import linking
from wabroadcast.sessions import service as sessions
from wabroadcast.sessions.schemas import (
    SESSION_ID_PATTERN,
    LinkOut,
    SessionCreate,
    SessionOut,
    SessionsPage,
    SessionStatusOut,
    SessionUpdate,
)

router = APIRouter(prefix="/api/whatsapp", tags=["sessions"])

SessionQuery = Annotated[
    str | None, Query(max_length=64, description="Defaults to the tenant's default session.")
]
SessionPath = Annotated[str, Path(pattern=SESSION_ID_PATTERN, examples=["business_1"])]


@router.get(
    "/status",
    response_model=SessionStatusOut,
    responses=tenant_errors(SessionNotFound),
    summary="The session's WhatsApp connection state and send settings",
)
async def session_status(
    ctx: Ctx, tenant: CurrentTenant, session_id: SessionQuery = None
) -> SessionStatusOut:
    return await sessions.session_status(ctx, tenant, session_id)


@router.post(
    "/sessions",
    status_code=201,
    response_model=SessionOut,
    responses=tenant_errors(PayloadTooLarge, SessionExists, WebhookKeyInUse, ProviderSetupFailed),
    summary="Add a WhatsApp session (a number through one provider)",
    description=(
        "The config is validated by the provider's model; secret fields (tokens, app "
        "secrets, API keys) are stored encrypted and never returned."
    ),
)
async def create_session(body: SessionCreate, ctx: Ctx, tenant: CurrentTenant) -> SessionOut:
    return await sessions.create_session(ctx, tenant, body)


@router.get(
    "/sessions",
    response_model=SessionsPage,
    responses=tenant_errors(),
    summary="The tenant's sessions, by id",
)
async def list_sessions(
    ctx: Ctx,
    tenant: CurrentTenant,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> SessionsPage:
    return await sessions.list_sessions(ctx, tenant, cursor=cursor, limit=limit)


@router.get(
    "/sessions/{session_id}",
    response_model=SessionOut,
    responses=tenant_errors(SessionNotFound),
    summary="One session, its secrets masked",
)
async def get_session(session_id: SessionPath, ctx: Ctx, tenant: CurrentTenant) -> SessionOut:
    return await sessions.get_session(ctx, tenant, session_id)


@router.patch(
    "/sessions/{session_id}",
    response_model=SessionOut,
    responses=tenant_errors(PayloadTooLarge, SessionNotFound, WebhookKeyInUse, ProviderSetupFailed),
    summary="Change a session's config, pace or default; unset fields keep their value",
)
async def update_session(
    session_id: SessionPath, body: SessionUpdate, ctx: Ctx, tenant: CurrentTenant
) -> SessionOut:
    return await sessions.update_session(ctx, tenant, session_id, body)


@router.delete(
    "/sessions/{session_id}",
    status_code=204,
    responses=tenant_errors(SessionNotFound, SessionInUse),
    summary="Delete a session with no active broadcast (409 SESSION_IN_USE otherwise)",
)
async def delete_session(session_id: SessionPath, ctx: Ctx, tenant: CurrentTenant) -> Response:
    await sessions.delete_session(ctx, tenant, session_id)
    return Response(status_code=204)


@router.get(
    "/sessions/{session_id}/status",
    response_model=SessionStatusOut,
    responses=tenant_errors(SessionNotFound),
    summary="What the session's provider says about its connection now",
)
async def session_status_by_id(
    session_id: SessionPath, ctx: Ctx, tenant: CurrentTenant
) -> SessionStatusOut:
    return await sessions.session_status(ctx, tenant, session_id)


@router.post(
    "/sessions/{session_id}/connect",
    response_model=LinkOut,
    responses=tenant_errors(SessionNotFound, SessionNotLinkable, ProviderSetupFailed),
    summary="Start a QR-linked session (Baileys) on its gateway; its QR code until linked",
)
async def connect_session(session_id: SessionPath, ctx: Ctx, tenant: CurrentTenant) -> LinkOut:
    return await linking.connect_session(ctx, tenant, session_id)


@router.get(
    "/sessions/{session_id}/link",
    response_model=LinkOut,
    responses=tenant_errors(SessionNotFound, SessionNotLinkable, ProviderSetupFailed),
    summary="Where linking the session's phone stands, with the QR code to scan",
)
async def session_link(session_id: SessionPath, ctx: Ctx, tenant: CurrentTenant) -> LinkOut:
    return await linking.link_state(ctx, tenant, session_id)


@router.post(
    "/sessions/{session_id}/logout",
    response_model=LinkOut,
    responses=tenant_errors(SessionNotFound, SessionNotLinkable, ProviderSetupFailed),
    summary="Unlink the session's phone (a new QR code is needed to link it again)",
)
async def logout_session(session_id: SessionPath, ctx: Ctx, tenant: CurrentTenant) -> LinkOut:
    return await linking.logout_session(ctx, tenant, session_id)
