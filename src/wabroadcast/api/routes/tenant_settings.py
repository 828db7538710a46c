"""Tenant settings routes: the time zone, quiet hours and opt-out reply of the caller."""

from __future__ import annotations

from fastapi import APIRouter

from wabroadcast.api.deps import Ctx, CurrentTenant
from wabroadcast.api.routes import tenant_errors
from wabroadcast.tenants.settings import (
    TenantSettingsOut,
    TenantSettingsPatch,
    change_settings,
    read_settings,
)

router = APIRouter(prefix="/api/whatsapp/settings", tags=["settings"])


@router.get(
    "",
    response_model=TenantSettingsOut,
    responses=tenant_errors(),
    summary="The tenant's time zone, quiet hours and opt-out reply",
)
async def get_tenant_settings(ctx: Ctx, tenant: CurrentTenant) -> TenantSettingsOut:
    return await read_settings(ctx, tenant.tenant_id)


@router.patch(
    "",
    response_model=TenantSettingsOut,
    responses=tenant_errors(),
    summary="Change the tenant's time zone, quiet hours or opt-out reply (null clears)",
)
async def patch_tenant_settings(
    body: TenantSettingsPatch, ctx: Ctx, tenant: CurrentTenant
) -> TenantSettingsOut:
    return await change_settings(ctx, tenant.tenant_id, body)
