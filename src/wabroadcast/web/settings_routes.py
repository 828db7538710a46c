"""Dashboard route of the tenant's quiet hours and time zone (a section of the Sessions
page): the same service as ``PATCH /api/whatsapp/settings``, so the dashboard refuses
what the API refuses."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from wabroadcast.api.deps import Ctx
from wabroadcast.domain.errors import ValidationFailed
from wabroadcast.tenants.settings import change_settings, patch_from_options
from wabroadcast.web.auth import SignedInView, checked_form
from wabroadcast.web.rendering import DashboardRoute, see_other, url

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

# The Sessions page's notices after this form (``session_routes.SESSION_NOTICES``).
SAVED = "quiet_saved"
INVALID = "quiet_invalid"


@router.post("/settings/quiet-hours")
async def save_quiet_hours(request: Request, ctx: Ctx, view: SignedInView) -> Response:
    """Post/Redirect/Get back to the Sessions page; ``off`` ticked clears the window."""
    form = await checked_form(request, view.signed_in)
    zone = form.get("time_zone")
    window = form.get("quiet_hours")
    off = form.get("off") == "yes"
    try:
        patch = patch_from_options(
            time_zone=zone if isinstance(zone, str) else None,
            quiet_hours="off" if off else (window if isinstance(window, str) else None),
            opt_out_reply=None,
        )
        await change_settings(ctx, view.signed_in.tenant.tenant_id, patch)
    except ValidationFailed:
        return see_other(url("/sessions", notice=INVALID) + "#quiet-hours")
    return see_other(url("/sessions", notice=SAVED) + "#quiet-hours")
