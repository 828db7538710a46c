"""Evolution's webhooks: the per-session routing key, the secret header, status mapping."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.fake_evolution import (
    envelope,
    messages_update_body,
    update_item,
    webhook_headers,
)
from wabroadcast.providers.base import (
    Receipt,
    ReceiptStatus,
    SessionRef,
    WebhookBodyInvalid,
    WebhookSignatureInvalid,
)
from wabroadcast.providers.evolution import PLUGIN
from wabroadcast.providers.evolution.webhook import parse, routing_keys

SECRET = "9f2c" * 16
API_KEY = "EVOLUTION-GLOBAL-KEY"
KEY_ID = "3EB0A1B2C3D4E5F6A7B8C9"
AT = datetime(2026, 11, 28, 12, 0, 5, tzinfo=UTC)


def session(secret: str = SECRET, instance: str = "shop1") -> SessionRef:
    return SessionRef(
        session_id="evo_1",
        tenant_id=1,
        provider="evolution",
        config={"base_url": "http://evo.test", "api_key": API_KEY, "instance": instance},
        webhook_secret=secret,
    )


def accepted(body: bytes, ref: SessionRef | None = None) -> list[Receipt]:
    return parse(ref or session(), webhook_headers(SECRET), body)


def dumps(document: object) -> bytes:
    return json.dumps(document).encode()


# --- routing -----------------------------------------------------------------------------


def test_a_call_is_routed_by_its_url_alone() -> None:
    body = messages_update_body(KEY_ID, "READ")
    assert routing_keys(webhook_headers(SECRET), body, "evo_1") == ["evo_1"]
    assert routing_keys(webhook_headers(SECRET), body, None) == []
    assert routing_keys({}, b"not json", "") == []


def test_the_plugin_routes_by_session_id_with_one_url_per_session() -> None:
    assert PLUGIN.webhook is not None
    assert PLUGIN.webhook.per_session_url is True
    assert PLUGIN.webhook_key("evo_1", {"instance": "shop1"}) == "evo_1"
    assert set(PLUGIN.webhook.headers) == {"X-Wabroadcast-Webhook-Secret"}


# --- the secret header -------------------------------------------------------------------


def test_the_sessions_secret_is_accepted_whatever_the_header_names_case() -> None:
    body = messages_update_body(KEY_ID, "DELIVERY_ACK")
    for headers in (
        webhook_headers(SECRET),
        {"x-wabroadcast-webhook-secret": SECRET},
        {"X-WABROADCAST-WEBHOOK-SECRET": SECRET},
    ):
        assert parse(session(), headers, body) == [Receipt(KEY_ID, ReceiptStatus.DELIVERED, AT)]


@pytest.mark.parametrize(
    "headers",
    [
        webhook_headers("0" * 64),
        webhook_headers(SECRET[:-1]),
        webhook_headers(SECRET + "0"),
        webhook_headers(SECRET.upper()),
        webhook_headers(""),
        webhook_headers(API_KEY),  # the Evolution API key is not the webhook secret
        {"Content-Type": "application/json"},
        {"apikey": SECRET},
        {"jwt_key": SECRET},
        {"Authorization": f"Bearer {SECRET}"},
    ],
)
def test_a_forged_or_missing_secret_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(WebhookSignatureInvalid):
        parse(session(), headers, messages_update_body(KEY_ID, "READ"))


def test_a_non_ascii_secret_header_is_a_mismatch_not_a_crash() -> None:
    for forged in (SECRET[:-1] + "é", "סוד", "\udcff"):
        with pytest.raises(WebhookSignatureInvalid):
            parse(session(), webhook_headers(forged), messages_update_body(KEY_ID, "READ"))
    # Starlette hands headers over as latin-1 text: an encoded "é" is two such characters.
    latin1 = (SECRET[:-1] + "é").encode().decode("latin-1")
    with pytest.raises(WebhookSignatureInvalid):
        parse(session(), webhook_headers(latin1), messages_update_body(KEY_ID, "READ"))


def test_a_session_without_a_secret_accepts_nothing() -> None:
    with pytest.raises(WebhookSignatureInvalid):
        parse(session(secret=""), webhook_headers(""), messages_update_body(KEY_ID, "READ"))


def test_the_secret_is_checked_before_the_body_is_read() -> None:
    with pytest.raises(WebhookSignatureInvalid):
        parse(session(), webhook_headers("wrong"), b"{not json")
    with pytest.raises(WebhookBodyInvalid):
        parse(session(), webhook_headers(SECRET), b"{not json")


# --- statuses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("DELIVERY_ACK", ReceiptStatus.DELIVERED),
        ("READ", ReceiptStatus.READ),
        ("PLAYED", ReceiptStatus.READ),
        ("ERROR", ReceiptStatus.FAILED),
    ],
)
def test_statuses_that_are_receipts(status: str, expected: ReceiptStatus) -> None:
    (receipt,) = accepted(messages_update_body(KEY_ID, status))
    assert (receipt.provider_message_id, receipt.status, receipt.at) == (KEY_ID, expected, AT)
    if expected is ReceiptStatus.FAILED:
        assert receipt.error_code == "EVOLUTION_ERROR"
        assert receipt.error_message
    else:
        assert (receipt.error_code, receipt.error_message) == (None, None)


@pytest.mark.parametrize("status", ["PENDING", "SERVER_ACK", "DELETED", "SOMETHING_NEW"])
def test_statuses_that_report_nothing(status: str) -> None:
    assert accepted(messages_update_body(KEY_ID, status)) == []


def test_the_receipt_is_keyed_by_key_id_not_evolutions_row_id() -> None:
    item = update_item(KEY_ID, "READ", message_id="cmrow999", remote_jid="123456789@lid")
    (receipt,) = accepted(dumps(envelope("messages.update", item)))
    assert receipt.provider_message_id == KEY_ID


def test_data_may_be_a_list_of_updates() -> None:
    items = [update_item("ID1", "DELIVERY_ACK"), update_item("ID2", "SERVER_ACK")]
    items.append(update_item("ID3", "READ"))
    receipts = accepted(dumps(envelope("messages.update", items)))
    assert [(r.provider_message_id, r.status) for r in receipts] == [
        ("ID1", ReceiptStatus.DELIVERED),
        ("ID3", ReceiptStatus.READ),
    ]


def test_the_upper_snake_event_name_is_understood_too() -> None:
    (receipt,) = accepted(dumps(envelope("MESSAGES_UPDATE", update_item(KEY_ID, "READ"))))
    assert receipt.status is ReceiptStatus.READ


@pytest.mark.parametrize(
    ("event", "data"),
    [
        ("connection.update", {"instance": "shop1", "state": "close", "statusReason": 401}),
        ("messages.upsert", {"key": {"id": "X", "fromMe": False}, "message": {}}),
        ("qrcode.updated", {"qrcode": {}}),
    ],
)
def test_other_events_are_accepted_and_report_nothing(event: str, data: object) -> None:
    assert accepted(dumps(envelope(event, data))) == []


def test_updates_of_incoming_messages_and_of_another_instance_report_nothing() -> None:
    incoming = update_item(KEY_ID, "READ", from_me=False)
    assert accepted(dumps(envelope("messages.update", incoming))) == []
    other = envelope("messages.update", update_item(KEY_ID, "READ"), instance="other")
    assert accepted(dumps(other)) == []


# --- time --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("date_time", "expected"),
    [
        ("2026-11-28T12:00:05.000Z", AT),
        ("2026-11-28T12:00:05Z", AT),
        ("2026-11-28T14:00:05+02:00", AT),
        ("2026-11-28T12:00:05", AT),
    ],
)
def test_the_time_is_the_envelopes_date_time(date_time: str, expected: datetime) -> None:
    (receipt,) = accepted(messages_update_body(KEY_ID, "READ", date_time=date_time))
    assert receipt.at == expected


def test_without_date_time_the_updates_own_timestamp_or_now_is_used() -> None:
    item = update_item(KEY_ID, "READ")
    (receipt,) = accepted(dumps(envelope("messages.update", item, date_time=None)))
    assert abs(receipt.at - datetime.now(UTC)) < timedelta(minutes=1)
    item["messageTimestamp"] = int(AT.timestamp())
    (receipt,) = accepted(dumps(envelope("messages.update", item, date_time=None)))
    assert receipt.at == AT
    item["messageTimestamp"] = str(int(AT.timestamp() * 1000))
    (receipt,) = accepted(dumps(envelope("messages.update", item, date_time=None)))
    assert receipt.at == AT


@pytest.mark.parametrize(
    "date_time",
    ["yesterday", "1970-01-01T00:00:00Z", "2300-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", 5],
)
def test_a_time_that_is_not_one_or_out_of_range_is_refused(date_time: object) -> None:
    document = envelope("messages.update", update_item(KEY_ID, "READ"))
    document["date_time"] = date_time
    with pytest.raises(WebhookBodyInvalid):
        accepted(dumps(document))


def test_an_out_of_range_update_timestamp_is_refused() -> None:
    item = update_item(KEY_ID, "READ")
    item["messageTimestamp"] = 10**15
    with pytest.raises(WebhookBodyInvalid):
        accepted(dumps(envelope("messages.update", item, date_time=None)))


# --- malformed bodies --------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        [],
        "messages.update",
        {"data": update_item(KEY_ID, "READ")},
        {"event": 5, "data": {}},
        {"event": "messages.update", "data": None},
        {"event": "messages.update", "data": "x"},
        {"event": "messages.update", "data": [update_item(KEY_ID, "READ"), 5]},
        {"event": "messages.update", "data": {"status": "READ"}},
        {"event": "messages.update", "data": {"keyId": KEY_ID}},
        {"event": "messages.update", "data": {"keyId": "", "status": "READ"}},
        {"event": "messages.update", "data": {"keyId": "x" * 129, "status": "READ"}},
        {"event": "messages.update", "data": {"keyId": 7, "status": "READ"}},
    ],
)
def test_an_authenticated_body_that_is_not_an_envelope_is_refused(document: object) -> None:
    with pytest.raises(WebhookBodyInvalid):
        accepted(dumps(document))
