"""Dashboard routes of the Webhooks pages: the CRM's subscriptions, adding and deleting
one, and what each was sent (its deliveries, each attempt with the CRM's answer).

The same ``crm_webhooks.service`` functions as the API's
``/api/whatsapp/webhook-subscriptions`` routes, so a form gets the API's validation.
As in the API, a new subscription's signing secret is shown once: it travels from
the POST to the page it redirects to in a short-lived encrypted cookie, which that
page deletes as it shows it, so neither a reload nor the address ever shows it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.responses import Response

from wabroadcast.api.deps import Ctx
from wabroadcast.crm_webhooks import service
from wabroadcast.crm_webhooks.events import DeliveryStatus, EventType
from wabroadcast.crm_webhooks.schemas import MAX_URL_CHARS, SubscriptionCreate
from wabroadcast.crypto import SecretsUnreadable
from wabroadcast.domain.errors import TooManyWebhookSubscriptions
from wabroadcast.texts import Translator
from wabroadcast.web import session_pages
from wabroadcast.web.auth import SignedInView, checked_form
from wabroadcast.web.rendering import DashboardRoute, PageView, see_other, url

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

DELIVERIES_PER_PAGE = 20
NEW_SECRET_COOKIE = "wab_new_secret"  # noqa: S105 (a cookie name, not a password)
NEW_SECRET_TTL_S = 300
Cursor = Annotated[str | None, Query(max_length=200)]
SubscriptionId = Annotated[int, Path(ge=1, le=2**63 - 1)]
NOTICES = {"deleted": "hooks.deleted"}


@dataclass(frozen=True, slots=True)
class HookProblem:
    """Why the subscription form was refused: a sentence, and one line per field."""

    code: str
    text: str
    items: list[str] = field(default_factory=list)


def _events() -> list[str]:
    return [event.value for event in EventType]


async def _list_page(
    ctx: Ctx,
    view: PageView,
    *,
    notice: str | None = None,
    problem: HookProblem | None = None,
    typed_url: str = "",
    chosen: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    tenant = view.signed_in.tenant
    subscriptions = await service.list_subscriptions(ctx, tenant)
    return view.render(
        "webhooks.html",
        status_code=status_code,
        **await session_pages.header(ctx, tenant),
        subscriptions=subscriptions.items,
        event_types=_events(),
        notice=notice,
        problem=problem,
        typed_url=typed_url,
        chosen=chosen if chosen is not None else [],
        max_url_chars=MAX_URL_CHARS,
        now=ctx.clock.now(),
        nav="webhooks",
    )


@router.get("/webhooks")
async def webhooks_page(
    ctx: Ctx, view: SignedInView, notice: Annotated[str | None, Query(max_length=40)] = None
) -> Response:
    shown = view.t(NOTICES[notice]) if notice in NOTICES else None
    return await _list_page(ctx, view, notice=shown)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _form_problem(exc: ValidationError, t: Translator) -> HookProblem:
    """One line for each field the API's body model refused, in the page's language."""
    items = []
    for field_name in dict.fromkeys(str(e["loc"][0]) for e in exc.errors() if e.get("loc")):
        if field_name == "url":
            items.append(t("hooks.url_invalid"))
        elif field_name == "events":
            items.append(t("hooks.events_none"))
        elif field_name == "secret":
            items.append(t("hooks.secret_length"))
    return HookProblem("VALIDATION_ERROR", t("hooks.refused"), items)


@router.post("/webhooks")
async def create_webhook(request: Request, ctx: Ctx, view: SignedInView) -> Response:
    """Subscribe a URL; then its page, which shows the signing secret this once."""
    form = await checked_form(request, view.signed_in)
    typed_url = _text(form, "url")[:MAX_URL_CHARS]
    known = set(_events())
    chosen = [e for e in form.getlist("events") if isinstance(e, str) and e in known]
    secret = _text(form, "secret").strip()
    try:
        events = [EventType(e) for e in chosen]
        body = SubscriptionCreate(url=typed_url, events=events, secret=secret or None)
        created = await service.create_subscription(ctx, view.signed_in.tenant, body)
    except ValidationError as exc:
        problem = _form_problem(exc, view.t)
        return await _list_page(
            ctx, view, problem=problem, typed_url=typed_url, chosen=chosen, status_code=422
        )
    except TooManyWebhookSubscriptions as exc:
        text = view.t("hooks.too_many", max=exc.details.get("max", service.MAX_SUBSCRIPTIONS))
        problem = HookProblem(exc.error_code, text)
        return await _list_page(
            ctx, view, problem=problem, typed_url=typed_url, chosen=chosen, status_code=409
        )
    response = see_other(f"/webhooks/{created.id}")
    response.set_cookie(
        NEW_SECRET_COOKIE,
        ctx.secrets.encrypt({"subscription_id": str(created.id), "secret": created.secret}),
        max_age=NEW_SECRET_TTL_S,
        path="/webhooks",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _new_secret(request: Request, ctx: Ctx, subscription_id: int) -> str | None:
    """The secret of the subscription just made, if this is the page its POST led to."""
    token = request.cookies.get(NEW_SECRET_COOKIE)
    if not token:
        return None
    try:
        found = ctx.secrets.decrypt(token)
    except SecretsUnreadable:
        return None
    if found.get("subscription_id") != str(subscription_id):
        return None
    return found.get("secret")


async def _detail_page(
    ctx: Ctx,
    view: PageView,
    subscription_id: int,
    *,
    status: DeliveryStatus | None = None,
    cursor: str | None = None,
    new_secret: str | None = None,
    unconfirmed: str | None = None,
    status_code: int = 200,
) -> Response:
    tenant = view.signed_in.tenant
    subscription = await service.get_subscription(ctx, tenant, subscription_id)
    deliveries = await service.list_deliveries(
        ctx, tenant, subscription_id, cursor=cursor, status=status, limit=DELIVERIES_PER_PAGE
    )
    return view.render(
        "webhook.html",
        status_code=status_code,
        **await session_pages.header(ctx, tenant),
        s=subscription,
        deliveries=deliveries.items,
        next_cursor=deliveries.next_cursor,
        cursor=cursor or "",
        status_filter=status.value if status else "",
        delivery_statuses=[d.value for d in DeliveryStatus],
        new_secret=new_secret,
        unconfirmed=unconfirmed,
        now=ctx.clock.now(),
        nav="webhooks",
    )


@router.get("/webhooks/{subscription_id}")
async def webhook_page(
    subscription_id: SubscriptionId,
    request: Request,
    ctx: Ctx,
    view: SignedInView,
    status: DeliveryStatus | None = None,
    cursor: Cursor = None,
) -> Response:
    """A subscription and its deliveries, newest first; right after it was made, its secret."""
    secret = _new_secret(request, ctx, subscription_id)
    response = await _detail_page(
        ctx, view, subscription_id, status=status, cursor=cursor, new_secret=secret
    )
    if secret is not None:
        response.delete_cookie(
            NEW_SECRET_COOKIE,
            path="/webhooks",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response


@router.get("/webhooks/{subscription_id}/delete")
async def delete_address(subscription_id: SubscriptionId, view: SignedInView) -> Response:
    """The address a refused delete was posted to (the language switch, a reload)."""
    return see_other(f"/webhooks/{subscription_id}")


@router.post("/webhooks/{subscription_id}/delete")
async def delete_webhook(
    subscription_id: SubscriptionId, request: Request, ctx: Ctx, view: SignedInView
) -> Response:
    """Stop sending to the URL, confirmed by a tick; what it was still owed is cancelled."""
    form = await checked_form(request, view.signed_in)
    if form.get("confirm") != "yes":
        unconfirmed = view.t("hooks.unconfirmed", id=subscription_id)
        return await _detail_page(
            ctx, view, subscription_id, unconfirmed=unconfirmed, status_code=400
        )
    await service.delete_subscription(ctx, view.signed_in.tenant, subscription_id)
    return see_other(url("/webhooks", notice="deleted"))
