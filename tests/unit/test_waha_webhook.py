"""WAHA's webhooks: the HMAC check, the ack table, times, and what is accepted without receipts."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.support.fake_waha import ack_webhook, signed_headers
from wabroadcast.providers.base import (
    Receipt,
    ReceiptStatus,
    SessionRef,
    WebhookBodyInvalid,
    WebhookSignatureInvalid,
)
from wabroadcast.providers.waha import PLUGIN
from wabroadcast.providers.waha.webhook import (
    ACK_ERROR_CODE,
    parse,
    routing_keys,
    sign,
)

HMAC_KEY = "waha-hmac-key-0123456789"
MESSAGE_ID = "true_972501234567@c.us_3EB0A1B2C3D4E5F6A7B8C9"
T0_MS = 1767000005123
T0 = datetime.fromtimestamp(1767000005, tz=UTC)


def session(hmac_key: str = HMAC_KEY, name: str = "default") -> SessionRef:
    return SessionRef(
        session_id="waha_1",
        tenant_id=1,
        provider="waha",
        config={
            "base_url": "http://waha.local:3000",
            "api_key": "KEY",
            "session": name,
            "hmac_key": hmac_key,
        },
    )


def signed_parse(body: bytes, ref: SessionRef | None = None) -> list[Receipt]:
    return parse(ref or session(), signed_headers(HMAC_KEY, body), body)


# --- signature ---------------------------------------------------------------------------


def test_the_documented_test_vector() -> None:
    body = b'{"event":"message","session":"default","engine":"WEBJS"}'
    expected = (
        "208f8a55dde9e05519e898b10b89bf0d0b3b0fdf11fdbf09b6b90476301b98d8"
        "097c462b2b17a6ce93b6b47a136cf2e78a33a63f6752c2c1631777076153fa89"
    )
    assert sign("my-secret-key", body) == expected
    assert parse(session("my-secret-key"), {"X-Webhook-Hmac": expected}, body) == []


@pytest.mark.parametrize("name", ["x-webhook-hmac", "X-WEBHOOK-HMAC", "X-Webhook-Hmac"])
def test_a_correct_hmac_is_accepted_whatever_the_header_case(name: str) -> None:
    body = ack_webhook(MESSAGE_ID, 3)
    receipts = parse(session(), {name: sign(HMAC_KEY, body)}, body)
    assert receipts == [Receipt(MESSAGE_ID, ReceiptStatus.READ, T0)]


def test_an_upper_case_hex_digest_is_accepted() -> None:
    body = ack_webhook(MESSAGE_ID, 2)
    receipts = parse(session(), {"X-Webhook-Hmac": sign(HMAC_KEY, body).upper()}, body)
    assert [receipt.status for receipt in receipts] == [ReceiptStatus.DELIVERED]


def test_a_missing_hmac_is_rejected() -> None:
    body = ack_webhook(MESSAGE_ID, 3)
    with pytest.raises(WebhookSignatureInvalid, match="missing"):
        parse(session(), {"Content-Type": "application/json"}, body)


@pytest.mark.parametrize(
    "headers",
    [
        signed_headers("another-sessions-hmac-key", ack_webhook(MESSAGE_ID, 3)),
        {"X-Webhook-Hmac": "0" * 128},
        {"X-Webhook-Hmac": ""},
        {"X-Webhook-Hmac": "sha512=" + sign(HMAC_KEY, ack_webhook(MESSAGE_ID, 3))},
    ],
    ids=["other-key", "zeros", "empty", "prefixed"],
)
def test_a_forged_hmac_is_rejected(headers: dict[str, str]) -> None:
    with pytest.raises(WebhookSignatureInvalid, match="does not match"):
        parse(session(), headers, ack_webhook(MESSAGE_ID, 3))


def test_a_signature_of_another_body_is_rejected() -> None:
    signed = ack_webhook(MESSAGE_ID, 2)
    tampered = ack_webhook(MESSAGE_ID, 3)
    with pytest.raises(WebhookSignatureInvalid):
        parse(session(), signed_headers(HMAC_KEY, signed), tampered)


@pytest.mark.parametrize("value", ["é" * 128, "\u00ff" + sign(HMAC_KEY, b"x")[1:], "ü"])
def test_a_non_ascii_hmac_is_a_mismatch_not_a_crash(value: str) -> None:
    with pytest.raises(WebhookSignatureInvalid, match="does not match"):
        parse(session(), {"X-Webhook-Hmac": value}, ack_webhook(MESSAGE_ID, 3))


def test_another_algorithm_is_rejected() -> None:
    body = ack_webhook(MESSAGE_ID, 3)
    headers = {"X-Webhook-Hmac": sign(HMAC_KEY, body), "X-Webhook-Hmac-Algorithm": "sha256"}
    with pytest.raises(WebhookSignatureInvalid, match="sha512"):
        parse(session(), headers, body)


def test_a_session_without_an_hmac_key_accepts_nothing() -> None:
    body = ack_webhook(MESSAGE_ID, 3)
    with pytest.raises(WebhookSignatureInvalid):
        parse(session(hmac_key=""), {"X-Webhook-Hmac": sign("", body)}, body)


def test_the_signature_is_checked_before_the_body_is_read() -> None:
    with pytest.raises(WebhookSignatureInvalid):
        parse(session(), {"X-Webhook-Hmac": "00"}, b"not json at all")


# --- the ack table -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ack", "status"),
    [
        (-1, ReceiptStatus.FAILED),
        (0, None),
        (1, None),
        (2, ReceiptStatus.DELIVERED),
        (3, ReceiptStatus.READ),
        (4, ReceiptStatus.READ),
    ],
    ids=["ERROR", "PENDING", "SERVER", "DEVICE", "READ", "PLAYED"],
)
def test_each_ack_maps_to_its_receipt(ack: int, status: ReceiptStatus | None) -> None:
    receipts = signed_parse(ack_webhook(MESSAGE_ID, ack))
    if status is None:
        assert receipts == []
        return
    (receipt,) = receipts
    assert (receipt.provider_message_id, receipt.status, receipt.at) == (MESSAGE_ID, status, T0)
    if status is ReceiptStatus.FAILED:
        assert receipt.error_code == ACK_ERROR_CODE
        assert receipt.error_message
    else:
        assert (receipt.error_code, receipt.error_message) == (None, None)


def _error_ack(error: object) -> bytes:
    document = json.loads(ack_webhook(MESSAGE_ID, -1))
    document["payload"]["error"] = error
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "error", [{"code": "463", "blocked": True}, {"code": 463}, {"code": "479", "blocked": True}]
)
def test_an_error_ack_that_says_the_account_is_restricted_blocks_it(error: object) -> None:
    (receipt,) = signed_parse(_error_ack(error))
    assert (receipt.status, receipt.error_code) == (ReceiptStatus.FAILED, ACK_ERROR_CODE)
    assert receipt.account_blocked is True
    assert receipt.error_message is not None
    assert "restricted" in receipt.error_message


@pytest.mark.parametrize("error", [None, {}, {"code": "131"}, {"blocked": False}, "463"])
def test_other_error_acks_fail_the_message_only(error: object) -> None:
    (receipt,) = signed_parse(_error_ack(error))
    assert (receipt.status, receipt.error_code) == (ReceiptStatus.FAILED, ACK_ERROR_CODE)
    assert receipt.account_blocked is False
    if error == {"code": "131"}:
        assert receipt.error_message is not None
        assert "131" in receipt.error_message


@pytest.mark.parametrize("ack", [5, 99, -2])
def test_an_ack_outside_the_table_gives_no_receipt(ack: int) -> None:
    assert signed_parse(ack_webhook(MESSAGE_ID, ack)) == []


def test_an_ack_of_a_message_we_received_gives_no_receipt() -> None:
    document = json.loads(ack_webhook("false_972501234567@c.us_3EB0FFFF", 3))
    document["payload"]["fromMe"] = False
    assert signed_parse(json.dumps(document).encode()) == []


def test_an_ack_of_another_waha_session_gives_no_receipt() -> None:
    body = ack_webhook(MESSAGE_ID, 3, session="other")
    assert signed_parse(body) == []
    ref = session(name="other")
    assert [r.status for r in parse(ref, signed_headers(HMAC_KEY, body), body)] == [
        ReceiptStatus.READ
    ]


@pytest.mark.parametrize("event", ["message", "session.status", "message.any", "presence.update"])
def test_other_events_are_accepted_without_receipts(event: str) -> None:
    assert signed_parse(ack_webhook(MESSAGE_ID, 3, event=event)) == []


# --- times -------------------------------------------------------------------------------


def test_the_payload_timestamp_in_seconds_wins_over_the_envelopes_milliseconds() -> None:
    body = ack_webhook(MESSAGE_ID, 2, payload_timestamp=1767000100, timestamp_ms=T0_MS)
    (receipt,) = signed_parse(body)
    assert receipt.at == datetime.fromtimestamp(1767000100, tz=UTC)


def test_the_envelope_timestamp_is_milliseconds() -> None:
    (receipt,) = signed_parse(ack_webhook(MESSAGE_ID, 2, timestamp_ms=1767000000999))
    assert receipt.at == datetime.fromtimestamp(1767000000, tz=UTC)


def test_without_any_timestamp_the_receipt_is_dated_now() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    (receipt,) = signed_parse(ack_webhook(MESSAGE_ID, 2, timestamp_ms=None))
    assert before <= receipt.at <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("payload_timestamp", "timestamp_ms"),
    [
        (1, None),  # 1970
        (10**11, None),  # year 5138
        (-5, None),
        (None, 1767000005),  # seconds where milliseconds belong: 1970
        (None, 10**15),
    ],
)
def test_out_of_range_times_are_refused(
    payload_timestamp: int | None, timestamp_ms: int | None
) -> None:
    body = ack_webhook(
        MESSAGE_ID, 3, payload_timestamp=payload_timestamp, timestamp_ms=timestamp_ms
    )
    with pytest.raises(WebhookBodyInvalid, match="range"):
        signed_parse(body)


# --- malformed but signed ----------------------------------------------------------------


def _with_payload(**changes: object) -> bytes:
    document = json.loads(ack_webhook(MESSAGE_ID, 3))
    document["payload"].update(changes)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"session":"default"}',
        b'{"event":"message.ack","session":"default"}',
        b'{"event":"message.ack","session":"default","payload":[]}',
        _with_payload(ack="3"),
        _with_payload(ack=True),
        _with_payload(ack=None),
        _with_payload(id=None),
        _with_payload(id=""),
        _with_payload(id="x" * 129),
        _with_payload(timestamp="soon"),
        _with_payload(timestamp=1.5),
    ],
)
def test_a_signed_body_that_is_not_a_waha_event_is_invalid(body: bytes) -> None:
    with pytest.raises(WebhookBodyInvalid):
        signed_parse(body)


# --- routing -----------------------------------------------------------------------------


def test_the_url_names_the_session() -> None:
    body = ack_webhook(MESSAGE_ID, 3)
    assert routing_keys({}, body, "waha_1") == ["waha_1"]
    assert routing_keys({}, body, None) == []
    assert routing_keys({}, body, "") == []


def test_the_plugin_routes_by_session_id_on_a_url_of_its_own() -> None:
    assert PLUGIN.webhook is not None
    assert PLUGIN.webhook.per_session_url is True
    assert "X-Webhook-Hmac" in PLUGIN.webhook.headers
    assert PLUGIN.webhook_key("waha_1", {"session": "default"}) == "waha_1"
