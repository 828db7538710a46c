"""Meta's webhooks: routing keys, the signature check, status mapping, the GET handshake."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.support.fake_graph import signed_headers, status_entry, status_webhook
from wabroadcast.providers.base import (
    Receipt,
    ReceiptStatus,
    SessionRef,
    WebhookBodyInvalid,
    WebhookSignatureInvalid,
)
from wabroadcast.providers.cloud_api.errors import META_ERRORS
from wabroadcast.providers.cloud_api.webhook import (
    parse,
    routing_keys,
    sign,
    verify_subscription,
)

PHONE_NUMBER_ID = "100000000000001"
OTHER_PHONE_NUMBER_ID = "100000000000009"
APP_SECRET = "my-app-secret"
WAMID = "wamid.TEST0001"
T0 = 1767000000
VERIFY_TOKEN = "verify-me"


def session(
    phone_number_id: str = PHONE_NUMBER_ID,
    app_secret: str = APP_SECRET,
    verify_token: str = VERIFY_TOKEN,
) -> SessionRef:
    return SessionRef(
        session_id=f"s-{phone_number_id}",
        tenant_id=1,
        provider="cloud_api",
        config={
            "phone_number_id": phone_number_id,
            "access_token": "TOKEN",
            "app_secret": app_secret,
            "verify_token": verify_token,
            "api_version": "v23.0",
            "graph_base_url": "https://graph.facebook.com",
        },
    )


def signed_parse(body: bytes, ref: SessionRef | None = None) -> list[Receipt]:
    return parse(ref or session(), signed_headers(APP_SECRET, body), body)


# --- signature ---------------------------------------------------------------------------


def test_the_reference_test_vector() -> None:
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    assert sign("my-app-secret", body) == (
        "sha256=6181ffb07e99b650e7cd9a132e3f66127ec8827e9bab6e8df0feba5a07ea4c64"
    )
    assert parse(session(), {"X-Hub-Signature-256": sign(APP_SECRET, body)}, body) == []


@pytest.mark.parametrize(
    "name", ["x-hub-signature-256", "X-HUB-SIGNATURE-256", "X-Hub-Signature-256"]
)
def test_the_header_name_is_case_insensitive(name: str) -> None:
    body = status_webhook(PHONE_NUMBER_ID, [status_entry(WAMID, "read", timestamp=T0)])
    receipts = parse(session(), {name: sign(APP_SECRET, body)}, body)
    assert [receipt.status for receipt in receipts] == [ReceiptStatus.READ]


def test_a_missing_signature_is_rejected() -> None:
    body = status_webhook(PHONE_NUMBER_ID, [])
    with pytest.raises(WebhookSignatureInvalid, match="missing"):
        parse(session(), {"Content-Type": "application/json"}, body)


@pytest.mark.parametrize(
    "signature",
    [
        "sha256=" + "0" * 64,
        "6181ffb07e99b650e7cd9a132e3f66127ec8827e9bab6e8df0feba5a07ea4c64",
        "sha1=6181ffb07e99b650e7cd9a132e3f66127ec8827e9bab6e8df0feba5a07ea4c64",
        "",
        "sha256=",
        "sha256=é6181ffb07e99b650e7cd9a132e3f66127ec8827e9bab6e8df0feba5a07ea4c6",
        "sha256=\u202e" + "a" * 64,
    ],
)
def test_a_forged_or_foreign_signature_is_rejected(signature: str) -> None:
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    with pytest.raises(WebhookSignatureInvalid):
        parse(session(), {"X-Hub-Signature-256": signature}, body)


def test_a_signature_with_another_secret_is_rejected() -> None:
    body = status_webhook(PHONE_NUMBER_ID, [status_entry(WAMID, "delivered", timestamp=T0)])
    with pytest.raises(WebhookSignatureInvalid):
        parse(session(), signed_headers("another-app-secret", body), body)


def test_a_signature_of_another_body_is_rejected() -> None:
    body = status_webhook(PHONE_NUMBER_ID, [status_entry(WAMID, "delivered", timestamp=T0)])
    tampered = body.replace(b"delivered", b"read")
    with pytest.raises(WebhookSignatureInvalid):
        parse(session(), signed_headers(APP_SECRET, body), tampered)


def test_the_signature_is_checked_before_the_body_is_read() -> None:
    with pytest.raises(WebhookSignatureInvalid):
        parse(session(), {"X-Hub-Signature-256": "sha256=00"}, b"not json")


def test_a_session_without_an_app_secret_accepts_nothing() -> None:
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    with pytest.raises(WebhookSignatureInvalid):
        parse(session(app_secret=""), {"X-Hub-Signature-256": sign("", body)}, body)


# --- statuses ----------------------------------------------------------------------------


def test_delivered_and_read_become_receipts_with_utc_times() -> None:
    body = status_webhook(
        PHONE_NUMBER_ID,
        [
            status_entry(WAMID, "delivered", timestamp=T0 + 5),
            status_entry(WAMID, "read", timestamp=T0 + 60),
        ],
    )
    assert signed_parse(body) == [
        Receipt(WAMID, ReceiptStatus.DELIVERED, datetime(2025, 12, 29, 9, 20, 5, tzinfo=UTC)),
        Receipt(WAMID, ReceiptStatus.READ, datetime(2025, 12, 29, 9, 21, tzinfo=UTC)),
    ]


def test_read_without_delivered_is_a_receipt_of_its_own() -> None:
    body = status_webhook(PHONE_NUMBER_ID, [status_entry("wamid.ONLYREAD", "read", timestamp=T0)])
    (receipt,) = signed_parse(body)
    assert receipt.provider_message_id == "wamid.ONLYREAD"
    assert receipt.status is ReceiptStatus.READ
    assert receipt.at == datetime.fromtimestamp(T0, tz=UTC)
    assert receipt.at.tzinfo is UTC


def test_failed_carries_the_meta_code_and_text() -> None:
    errors: list[dict[str, object]] = [
        {
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "Message Undeliverable."},
        }
    ]
    body = status_webhook(
        PHONE_NUMBER_ID, [status_entry(WAMID, "failed", timestamp=T0 + 2, errors=errors)]
    )
    assert signed_parse(body) == [
        Receipt(
            WAMID,
            ReceiptStatus.FAILED,
            datetime.fromtimestamp(T0 + 2, tz=UTC),
            error_code="META_131026",
            error_message=f"Message Undeliverable. {META_ERRORS[131026][1]}",
        )
    ]


def test_failed_without_errors_is_still_a_failure() -> None:
    body = status_webhook(PHONE_NUMBER_ID, [status_entry(WAMID, "failed", timestamp=T0)])
    (receipt,) = signed_parse(body)
    assert receipt.status is ReceiptStatus.FAILED
    assert receipt.error_code == "META_UNKNOWN"


def test_sent_and_unknown_statuses_give_no_receipt() -> None:
    body = status_webhook(
        PHONE_NUMBER_ID,
        [
            status_entry(WAMID, "sent", timestamp=T0),
            status_entry(WAMID, "deleted", timestamp=T0),
            status_entry(WAMID, "delivered", timestamp=T0 + 1),
        ],
    )
    assert [receipt.status for receipt in signed_parse(body)] == [ReceiptStatus.DELIVERED]


def test_changes_for_another_phone_number_are_skipped() -> None:
    document = json.loads(
        status_webhook(OTHER_PHONE_NUMBER_ID, [status_entry("wamid.OTHER", "read", timestamp=T0)])
    )
    mine = json.loads(
        status_webhook(PHONE_NUMBER_ID, [status_entry("wamid.MINE", "read", timestamp=T0)])
    )
    document["entry"] += mine["entry"]
    body = json.dumps(document).encode()
    assert [receipt.provider_message_id for receipt in signed_parse(body)] == ["wamid.MINE"]
    other = session(OTHER_PHONE_NUMBER_ID)
    assert [receipt.provider_message_id for receipt in signed_parse(body, other)] == ["wamid.OTHER"]


def test_other_fields_and_inbound_messages_are_ignored() -> None:
    document = json.loads(status_webhook(PHONE_NUMBER_ID, []))
    value = document["entry"][0]["changes"][0]["value"]
    value["messages"] = [{"from": "972501234567", "id": "wamid.IN", "type": "text"}]
    document["entry"][0]["changes"].append({"field": "account_update", "value": {"x": 1}})
    body = json.dumps(document).encode()
    assert signed_parse(body) == []


def test_nul_characters_are_stripped() -> None:
    errors: list[dict[str, object]] = [{"code": 131026, "title": "Bad\x00title"}]
    body = status_webhook(
        PHONE_NUMBER_ID, [status_entry("wamid.\x00NUL", "failed", timestamp=T0, errors=errors)]
    )
    (receipt,) = signed_parse(body)
    assert receipt.provider_message_id == "wamid.NUL"
    assert receipt.error_message is not None
    assert "\x00" not in receipt.error_message


@pytest.mark.parametrize(
    "timestamp",
    ["", "abc", "1767000000.5", "-1", "946684799", "7258118401", "١٧٦٧٠٠٠٠٠٠", None, 1.5, True],
)
def test_bad_timestamps_are_rejected(timestamp: object) -> None:
    entry = status_entry(WAMID, "delivered", timestamp=T0)
    entry["timestamp"] = timestamp
    with pytest.raises(WebhookBodyInvalid, match="timestamp"):
        signed_parse(status_webhook(PHONE_NUMBER_ID, [entry]))


def test_the_timestamp_range_is_inclusive() -> None:
    for seconds in (946684800, 7258118400):
        body = status_webhook(PHONE_NUMBER_ID, [status_entry(WAMID, "read", timestamp=seconds)])
        (receipt,) = signed_parse(body)
        assert receipt.at == datetime.fromtimestamp(seconds, tz=UTC)


@pytest.mark.parametrize("message_id", ["", "w" * 129, None, 42])
def test_bad_message_ids_are_rejected(message_id: object) -> None:
    entry = status_entry(WAMID, "read", timestamp=T0)
    entry["id"] = message_id
    with pytest.raises(WebhookBodyInvalid):
        signed_parse(status_webhook(PHONE_NUMBER_ID, [entry]))


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"object":"page","entry":[]}',
        b'{"entry":[]}',
        b'{"object":"whatsapp_business_account","entry":{}}',
        b'{"object":"whatsapp_business_account","entry":[{"changes":"x"}]}',
        b'{"object":"whatsapp_business_account","entry":[{"changes":[1]}]}',
        b'{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages"}]}]}',
    ],
)
def test_signed_bodies_that_are_not_whatsapp_webhooks_are_rejected(body: bytes) -> None:
    with pytest.raises(WebhookBodyInvalid):
        signed_parse(body)


def test_statuses_that_are_not_a_list_are_rejected() -> None:
    document = json.loads(status_webhook(PHONE_NUMBER_ID, []))
    document["entry"][0]["changes"][0]["value"]["statuses"] = {"id": WAMID}
    with pytest.raises(WebhookBodyInvalid):
        signed_parse(json.dumps(document).encode())


# --- routing keys ------------------------------------------------------------------------


def test_routing_keys_are_the_distinct_phone_number_ids() -> None:
    first = json.loads(status_webhook(PHONE_NUMBER_ID, []))
    second = json.loads(status_webhook(OTHER_PHONE_NUMBER_ID, []))
    third = json.loads(status_webhook(PHONE_NUMBER_ID, []))
    first["entry"] += second["entry"] + third["entry"]
    body = json.dumps(first).encode()
    assert routing_keys({}, body, None) == [PHONE_NUMBER_ID, OTHER_PHONE_NUMBER_ID]


def test_routing_keys_are_capped() -> None:
    document = json.loads(status_webhook("1", []))
    change = document["entry"][0]["changes"][0]
    document["entry"][0]["changes"] = [
        {**change, "value": {"metadata": {"phone_number_id": str(n)}}} for n in range(1, 500)
    ]
    keys = routing_keys({}, json.dumps(document).encode(), None)
    assert keys == [str(n) for n in range(1, 101)]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1]",
        b'{"entry":"x"}',
        b'{"entry":[{"changes":{}}]}',
        b'{"entry":[{"changes":[{"value":{"metadata":{"phone_number_id":123}}}]}]}',
        b'{"entry":[{"changes":[{"value":{"metadata":{"phone_number_id":"12a"}}}]}]}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_routing_keys_of_malformed_bodies_are_empty(body: bytes) -> None:
    assert routing_keys({}, body, None) == []


# --- GET verification --------------------------------------------------------------------


def query(
    mode: str = "subscribe", token: str = VERIFY_TOKEN, challenge: str = "1158201444"
) -> dict[str, str]:
    return {"hub.mode": mode, "hub.verify_token": token, "hub.challenge": challenge}


def test_the_right_verify_token_gets_the_challenge_back() -> None:
    sessions = [session(OTHER_PHONE_NUMBER_ID, verify_token="other"), session()]
    assert verify_subscription(query(), sessions) == "1158201444"


@pytest.mark.parametrize(
    "params",
    [
        query(mode="unsubscribe"),
        query(token="verify-you"),
        query(token=""),
        query(challenge=""),
        query(challenge="x" * 257),
        query(challenge="<script>\n"),
        {"hub.verify_token": "verify-me", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
    ],
)
def test_anything_else_is_refused(params: dict[str, str]) -> None:
    assert verify_subscription(params, [session()]) is None


def test_no_sessions_no_challenge() -> None:
    assert verify_subscription(query(), []) is None


def test_a_session_with_an_empty_verify_token_matches_nothing() -> None:
    assert verify_subscription(query(token=""), [session(verify_token="")]) is None
