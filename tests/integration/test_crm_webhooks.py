"""Webhooks to the CRM on both databases, delivered over real HTTP to a local receiver.

The app clock is frozen: retries become due only when a test moves it, so the
schedule (15 s, doubling, 24 h) is checked without waiting.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.support.dispatch import URL, broadcast, create, dispatcher, scenario, unpaced
from tests.support.rows import il_numbers
from tests.support.tenants import START, TenantFixture, make_tenant
from tests.support.webhook_receiver import Receiver, running_receiver
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.crm_webhooks.deliverer import WebhookDeliverer
from wabroadcast.crm_webhooks.events import RETRY_FOR, EventType
from wabroadcast.crm_webhooks.outbox import Outbox
from wabroadcast.crm_webhooks.repository import ABANDONED_ATTEMPT, DeliveryRepository
from wabroadcast.db.models import WebhookDelivery, WebhookSubscription
from wabroadcast.dispatch.repository.lifecycle import LifecycleRepository

SUBSCRIPTIONS = "/api/whatsapp/webhook-subscriptions"
SECRET = "crm-shared-secret-0123456789"
ALL_BROADCAST_EVENTS = [
    "broadcast.queued",
    "broadcast.paused",
    "broadcast.completed",
    "broadcast.partial",
    "broadcast.failed",
    "broadcast.cancelled",
]


@pytest.fixture(autouse=True)
async def fast_session(ctx: AppContext, tenant: TenantFixture) -> None:
    await unpaced(ctx, tenant.session_id)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
async def deliverer(ctx: AppContext) -> AsyncIterator[WebhookDeliverer]:
    worker = WebhookDeliverer(ctx, "deliverer-1")
    yield worker
    await worker.aclose()


async def subscribe(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    url: str,
    events: list[str],
    secret: str | None = SECRET,
) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url, "events": events}
    if secret is not None:
        body["secret"] = secret
    response = await client.post(SUBSCRIPTIONS, json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def deliver_all(deliverer: WebhookDeliverer, rounds: int = 50) -> None:
    """Rounds until nothing is due now (the clock does not move)."""
    for _ in range(rounds):
        if not await deliverer.deliver_due():
            return
    raise AssertionError("deliveries still due after many rounds")


async def deliveries(
    client: httpx.AsyncClient, tenant: TenantFixture, subscription_id: int, **params: Any
) -> dict[str, Any]:
    response = await client.get(
        f"{SUBSCRIPTIONS}/{subscription_id}/deliveries", params=params, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def outbox_rows(ctx: AppContext) -> list[WebhookDelivery]:
    async with ctx.database.transaction() as session:
        rows = await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))
        return list(rows)


async def test_broadcast_events_arrive_signed_and_in_order(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    receiver: Receiver,
    deliverer: WebhookDeliverer,
) -> None:
    numbers = il_numbers(3)
    await subscribe(client, tenant, receiver.url, [*ALL_BROADCAST_EVENTS, "recipient.failed"])
    await scenario(client, tenant, fail_numbers={numbers[1]: "INVALID_NUMBER"})
    broadcast_id = await create(client, tenant, numbers, "crm test")
    await dispatcher(ctx).run_until_idle()
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "partial"

    await deliver_all(deliverer)

    assert receiver.types() == ["broadcast.queued", "recipient.failed", "broadcast.partial"]
    for request in receiver.received:
        assert request.signed_by(SECRET)
        assert not request.signed_by(SECRET + "x")
        assert request.headers["x-wabroadcast-timestamp"] == str(int(clock.now().timestamp()))
        assert request.headers["x-wabroadcast-event-id"] == request.json["id"]
        assert set(request.json) == {"id", "type", "created_at", "data"}
        assert request.json["data"]["broadcast_id"] == broadcast_id
    assert len({r.event_id for r in receiver.received}) == 3
    failed = receiver.received[1].json["data"]
    assert (failed["phone"], failed["error_code"]) == (numbers[1], "INVALID_NUMBER")
    final = receiver.received[2].json["data"]
    assert (final["status"], final["sent_count"], final["failed_count"]) == ("partial", 2, 1)
    assert final["total_recipients"] == 3
    assert {row.status for row in await outbox_rows(ctx)} == {"delivered"}


async def test_a_500_is_retried_with_the_same_event_id_after_15_seconds(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    clock: FrozenClock,
    receiver: Receiver,
    deliverer: WebhookDeliverer,
) -> None:
    subscription = await subscribe(client, tenant, receiver.url, ["broadcast.queued"])
    receiver.answers = [500]
    await create(client, tenant, il_numbers(1), "retry test")

    assert await deliverer.deliver_due() == 1
    pending = (await deliveries(client, tenant, subscription["id"]))["items"][0]
    assert pending["status"] == "pending"
    assert pending["last_status_code"] == 500
    assert pending["next_attempt_at"] == (START + timedelta(seconds=15)).isoformat().replace(
        "+00:00", "Z"
    )
    assert await deliverer.deliver_due() == 0  # not due yet

    clock.advance(15)
    assert await deliverer.deliver_due() == 1
    first, second = receiver.received
    assert first.event_id == second.event_id
    assert first.body == second.body
    assert first.signed_by(SECRET)
    assert second.signed_by(SECRET)
    assert (
        int(second.headers["x-wabroadcast-timestamp"])
        == int(first.headers["x-wabroadcast-timestamp"]) + 15
    )
    delivered = (await deliveries(client, tenant, subscription["id"]))["items"][0]
    assert delivered["status"] == "delivered"
    assert delivered["event_id"] == first.event_id
    assert [(a["attempt"], a["status_code"], a["error"]) for a in delivered["attempts"]] == [
        (1, 500, "HTTP 500"),
        (2, 200, None),
    ]


async def test_a_later_event_of_a_broadcast_waits_for_the_earlier_one(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    clock: FrozenClock,
    receiver: Receiver,
    deliverer: WebhookDeliverer,
) -> None:
    await subscribe(client, tenant, receiver.url, ALL_BROADCAST_EVENTS)
    receiver.answers = [500]
    first_id = await create(client, tenant, il_numbers(2), "first")
    assert await deliverer.deliver_due() == 1  # its queued event: 500
    paused = await client.post(f"{URL}/{first_id}/pause", headers=tenant.headers)
    assert paused.status_code == 200, paused.text
    other_id = await create(client, tenant, il_numbers(2, start=10), "other")

    await deliver_all(deliverer)
    # The other broadcast is not held up; the first's "paused" waits for its "queued".
    assert [(r.type, r.json["data"]["broadcast_id"]) for r in receiver.received] == [
        ("broadcast.queued", first_id),
        ("broadcast.queued", other_id),
    ]

    clock.advance(15)
    await deliver_all(deliverer)
    assert [(r.type, r.json["data"]["broadcast_id"]) for r in receiver.received[2:]] == [
        ("broadcast.queued", first_id),
        ("broadcast.paused", first_id),
    ]
    assert receiver.received[2].event_id == receiver.received[0].event_id


async def test_a_delivery_is_retried_for_24_hours_then_given_up(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    receiver: Receiver,
    deliverer: WebhookDeliverer,
) -> None:
    subscription = await subscribe(client, tenant, receiver.url, ALL_BROADCAST_EVENTS)
    receiver.answers = [500] * 1000
    broadcast_id = await create(client, tenant, il_numbers(1), "give up")
    cancelled = await client.post(f"{URL}/{broadcast_id}/cancel", headers=tenant.headers)
    assert cancelled.status_code == 200, cancelled.text

    attempted_at = []
    for _ in range(100):
        assert await deliverer.deliver_due() == 1  # only the head of the broadcast's events
        attempted_at.append(clock.now())
        queued = (await outbox_rows(ctx))[0]
        if queued.status != "pending":
            break
        assert queued.next_attempt_at is not None
        clock.set(queued.next_attempt_at)
    assert queued.status == "failed"
    assert queued.finished_at == START + RETRY_FOR
    assert attempted_at[0] == START
    assert attempted_at[1] - attempted_at[0] == timedelta(seconds=15)
    assert attempted_at[-1] == START + RETRY_FOR
    gaps = [b - a for a, b in itertools.pairwise(attempted_at)]
    assert gaps[:-1] == sorted(gaps[:-1])  # growing until the cap
    assert max(gaps) == timedelta(hours=2)
    assert len(receiver.received) == len(attempted_at)
    assert {r.event_id for r in receiver.received} == {queued.event_id}

    # Given up, it no longer holds back the broadcast's next event.
    receiver.answers = []
    await deliver_all(deliverer)
    assert receiver.received[-1].type == "broadcast.cancelled"
    page = await deliveries(client, tenant, subscription["id"])
    assert [(d["event_type"], d["status"]) for d in page["items"]] == [
        ("broadcast.cancelled", "delivered"),
        ("broadcast.queued", "failed"),
    ]
    assert len(page["items"][1]["attempts"]) == len(attempted_at)


async def test_no_answer_within_the_timeout_is_retried(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    subscription = await subscribe(client, tenant, receiver.url, ["broadcast.queued"])
    await create(client, tenant, il_numbers(1), "slow crm")
    receiver.hold.set()
    async with httpx.AsyncClient(timeout=0.3) as http:
        worker = WebhookDeliverer(ctx, "impatient", http=http)
        worker.timeout_s = 0.3
        assert await worker.deliver_due() == 1
        receiver.hold.clear()
        clock.advance(15)
        assert await worker.deliver_due() == 1
    delivery = (await deliveries(client, tenant, subscription["id"]))["items"][0]
    assert delivery["status"] == "delivered"
    assert [(a["status_code"], a["error"]) for a in delivery["attempts"]] == [
        (None, "no answer within 0.3 s"),
        (200, None),
    ]
    assert receiver.received[0].event_id == receiver.received[1].event_id


async def test_a_delivery_whose_worker_died_is_made_by_another_after_its_lease(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    receiver: Receiver,
    deliverer: WebhookDeliverer,
) -> None:
    subscription = await subscribe(client, tenant, receiver.url, ["broadcast.queued"])
    await create(client, tenant, il_numbers(1), "dead worker")
    async with ctx.database.transaction() as session:
        taken = await DeliveryRepository(session).claim_due(
            "dead-worker:1", clock.now(), timedelta(seconds=30), 10
        )
    assert len(taken) == 1  # ... and the worker that took it dies before posting

    assert await deliverer.deliver_due() == 0  # its lease still holds
    clock.advance(30)
    assert await deliverer.deliver_due() == 1
    assert [r.event_id for r in receiver.received] == [taken[0].event_id]
    delivery = (await deliveries(client, tenant, subscription["id"]))["items"][0]
    assert delivery["status"] == "delivered"
    assert [(a["attempt"], a["status_code"], a["error"]) for a in delivery["attempts"]] == [
        (1, None, ABANDONED_ATTEMPT),
        (2, 200, None),
    ]


async def test_the_outbox_row_is_written_in_the_transaction_of_the_change(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    await subscribe(client, tenant, "http://127.0.0.1:9/hooks", ["broadcast.paused"])
    broadcast_id = await create(client, tenant, il_numbers(2), "rollback")

    class Crash(Exception):
        pass

    async def pause_then_crash() -> None:
        async with ctx.database.transaction() as session:
            paused = await LifecycleRepository(session).pause_session_broadcasts(
                tenant.session_id, "restricted", clock.now()
            )
            assert paused == [broadcast_id]
            written = await session.scalar(select(func.count()).select_from(WebhookDelivery))
            assert written == 1
            raise Crash  # the process dies before the commit

    with pytest.raises(Crash):
        await pause_then_crash()
    assert await outbox_rows(ctx) == []
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "queued"

    async with ctx.database.transaction() as session:
        await LifecycleRepository(session).pause_session_broadcasts(
            tenant.session_id, "restricted", clock.now()
        )
    rows = await outbox_rows(ctx)
    assert [(r.event_type, r.broadcast_id, r.data["status_reason"]) for r in rows] == [
        ("broadcast.paused", broadcast_id, "restricted")
    ]


async def test_only_subscribed_events_of_subscribed_tenants_are_written(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    other = await make_tenant(ctx, name="No webhooks")
    await unpaced(ctx, other.session_id)
    await subscribe(client, tenant, "http://127.0.0.1:9/hooks", ["broadcast.partial"])
    numbers = il_numbers(2)
    for who in (tenant, other):
        await scenario(client, who, fail_numbers={numbers[0]: "INVALID_NUMBER"})
        await create(client, who, numbers, "only partial")
    await dispatcher(ctx).run_until_idle()
    rows = await outbox_rows(ctx)
    assert [(r.tenant_id, r.event_type, r.status) for r in rows] == [
        (tenant.tenant_id, "broadcast.partial", "pending")
    ]


async def test_subscriptions_are_listed_without_secrets_and_deleted(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    created = await subscribe(
        client,
        tenant,
        "https://crm.example.com/hooks",
        ["recipient.failed", "broadcast.completed", "recipient.replied", "recipient.failed"],
        secret=None,
    )
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["broadcast.completed", "recipient.failed", "recipient.replied"]
    async with ctx.database.transaction() as session:
        stored = await session.get(WebhookSubscription, created["id"])
        assert stored is not None
        assert created["secret"] not in stored.secret
        assert ctx.secrets.decrypt(stored.secret) == {"secret": created["secret"]}

    listed = (await client.get(SUBSCRIPTIONS, headers=tenant.headers)).json()["items"]
    assert listed == [{k: v for k, v in created.items() if k != "secret"}]
    outsider = await make_tenant(ctx, name="Outsider")
    for path in (f"{SUBSCRIPTIONS}/{created['id']}", f"{SUBSCRIPTIONS}/{created['id']}/deliveries"):
        hidden = await client.get(path, headers=outsider.headers)
        assert hidden.status_code == 404
        assert hidden.json()["error_code"] == "WEBHOOK_SUBSCRIPTION_NOT_FOUND"

    deleted = await client.delete(f"{SUBSCRIPTIONS}/{created['id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    assert (await client.get(SUBSCRIPTIONS, headers=tenant.headers)).json()["items"] == []
    again = await client.delete(f"{SUBSCRIPTIONS}/{created['id']}", headers=tenant.headers)
    assert again.status_code == 404
    assert again.json()["error_code"] == "WEBHOOK_SUBSCRIPTION_NOT_FOUND"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://crm.example.com/x", "events": ["broadcast.completed"]}, "url"),
        ({"url": "not a url", "events": ["broadcast.completed"]}, "url"),
        ({"url": "https://crm.example.com", "events": ["broadcast.started"]}, "events"),
        ({"url": "https://crm.example.com", "events": []}, "events"),
        (
            {"url": "https://crm.example.com", "events": ["broadcast.failed"], "secret": "short"},
            "secret",
        ),
    ],
)
async def test_a_bad_subscription_is_a_422_naming_the_field(
    client: httpx.AsyncClient, tenant: TenantFixture, body: dict[str, Any], field: str
) -> None:
    response = await client.post(SUBSCRIPTIONS, json=body, headers=tenant.headers)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error_code"] == "VALIDATION_ERROR"
    assert field in error["message"]


async def test_deleting_a_subscription_cancels_what_it_was_owed_and_deliveries_page(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    receiver: Receiver,
    deliverer: WebhookDeliverer,
) -> None:
    subscription = await subscribe(client, tenant, receiver.url, ["broadcast.queued"])
    for n in range(3):
        await create(client, tenant, il_numbers(1, start=n), f"page {n}")
    await deliver_all(deliverer)
    first = await deliveries(client, tenant, subscription["id"], limit=2)
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    rest = await deliveries(
        client, tenant, subscription["id"], limit=2, cursor=first["next_cursor"]
    )
    ids = [d["id"] for d in first["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == 3

    await create(client, tenant, il_numbers(1, start=7), "never sent")
    await client.delete(f"{SUBSCRIPTIONS}/{subscription['id']}", headers=tenant.headers)
    assert await deliverer.deliver_due() == 0
    assert [r.status for r in await outbox_rows(ctx)] == [
        "delivered",
        "delivered",
        "delivered",
        "cancelled",
    ]
    assert len(receiver.received) == 3


async def test_events_others_emit_are_written_only_for_their_subscribers(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    await subscribe(client, tenant, "http://127.0.0.1:9/hooks", ["recipient.opted_out"])
    async with ctx.database.transaction() as session:
        outbox = Outbox(session)
        await outbox.add(
            tenant.tenant_id,
            EventType.RECIPIENT_OPTED_OUT,
            {"phone": "+972502345678", "source": "inbound"},
            clock.now(),
        )
        await outbox.add(
            tenant.tenant_id,
            EventType.RECIPIENT_REPLIED,
            {"phone": "+972502345678"},
            clock.now(),
            broadcast_id=1,
        )
    rows = await outbox_rows(ctx)
    assert [(r.event_type, r.broadcast_id, r.data["source"]) for r in rows] == [
        ("recipient.opted_out", None, "inbound")
    ]


async def test_opted_out_numbers_are_told_once_each_and_a_stop_word_too(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    receiver: Receiver,
    deliverer: WebhookDeliverer,
) -> None:
    await subscribe(client, tenant, receiver.url, ["recipient.opted_out"])
    added = await client.post(
        "/api/whatsapp/opt-outs",
        json={"phones": ["050-234-5678", "+972 52 345 6789"], "reason": "asked by phone"},
        headers=tenant.headers,
    )
    assert added.status_code == 200, added.text
    # Already opted out: no second event.
    again = await client.post(
        "/api/whatsapp/opt-outs", json={"phones": ["0502345678"]}, headers=tenant.headers
    )
    assert again.status_code == 200, again.text
    inbound = await client.post(
        "/api/whatsapp/simulator/inbound",
        json={"from": "+972533456789", "text": " Stop "},
        headers=tenant.headers,
    )
    assert inbound.status_code < 300, inbound.text

    await deliver_all(deliverer)

    assert receiver.types() == ["recipient.opted_out"] * 3
    # Events of no broadcast keep no order among themselves.
    assert sorted((r.json["data"] for r in receiver.received), key=lambda d: d["phone"]) == [
        {"phone": "+972502345678", "source": "api", "reason": "asked by phone"},
        {"phone": "+972523456789", "source": "api", "reason": "asked by phone"},
        {"phone": "+972533456789", "source": "inbound", "reason": "stop word"},
    ]
    assert all(request.signed_by(SECRET) for request in receiver.received)
