"""Receipt rules and the simulator's webhook scheme, as pure functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wabroadcast.domain.status import RecipientStatus, can_transition
from wabroadcast.providers.base import (
    Receipt,
    ReceiptStatus,
    WebhookBodyInvalid,
    WebhookRejected,
    WebhookSignatureInvalid,
)
from wabroadcast.providers.simulator.webhook import (
    MAX_RECEIPTS,
    SESSION_HEADER,
    SIGNATURE_HEADER,
    parse_simulator_webhook,
    receipts_body,
    session_id_from_headers,
    sign_simulator_webhook,
)
from wabroadcast.receipts.service import (
    DEFAULT_FAILED_CODE,
    DEFAULT_FAILED_MESSAGE,
    RecipientState,
    apply_receipt,
)

R = RecipientStatus
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SECRET = "s3cret"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def delivered(seconds: float) -> Receipt:
    return Receipt("m1", ReceiptStatus.DELIVERED, at(seconds))


def read(seconds: float) -> Receipt:
    return Receipt("m1", ReceiptStatus.READ, at(seconds))


def failed(
    seconds: float, code: str | None = "131026", message: str | None = "undeliverable"
) -> Receipt:
    return Receipt("m1", ReceiptStatus.FAILED, at(seconds), code, message)


SENT = RecipientState(R.SENT)


# --- the rules --------------------------------------------------------------------------


def test_delivered_then_read_keeps_delivered_at() -> None:
    state = apply_receipt(SENT, delivered(2))
    assert state == RecipientState(R.DELIVERED, delivered_at=at(2))
    state = apply_receipt(state, read(5))
    assert state == RecipientState(R.READ, delivered_at=at(2), read_at=at(5))


def test_read_without_delivered_sets_both_timestamps() -> None:
    assert apply_receipt(SENT, read(5)) == RecipientState(R.READ, delivered_at=at(5), read_at=at(5))


def test_delivered_after_read_only_makes_delivered_at_earlier() -> None:
    state = apply_receipt(SENT, read(5))
    assert apply_receipt(state, delivered(2)) == RecipientState(
        R.READ, delivered_at=at(2), read_at=at(5)
    )
    assert apply_receipt(state, delivered(9)) is state


def test_delivered_fills_an_empty_delivered_at_on_a_read_row() -> None:
    state = RecipientState(R.READ, read_at=at(5))
    assert apply_receipt(state, delivered(3)).delivered_at == at(3)


def test_late_failure_after_sent_records_the_error() -> None:
    assert apply_receipt(SENT, failed(4)) == RecipientState(
        R.FAILED, failed_at=at(4), error_code="131026", error_message="undeliverable"
    )


def test_failure_without_a_reason_still_explains_itself() -> None:
    state = apply_receipt(SENT, failed(4, code=None, message=None))
    assert (state.error_code, state.error_message) == (DEFAULT_FAILED_CODE, DEFAULT_FAILED_MESSAGE)


@pytest.mark.parametrize(
    "state",
    [
        RecipientState(R.DELIVERED, delivered_at=at(1)),
        RecipientState(R.READ, delivered_at=at(1), read_at=at(2)),
        RecipientState(R.FAILED, failed_at=at(1), error_code="X", error_message="x"),
        RecipientState(R.CANCELLED),
    ],
)
def test_failure_never_overrides_a_later_or_final_state(state: RecipientState) -> None:
    assert apply_receipt(state, failed(9)) is state


def test_unknown_outcome_turns_delivered_and_keeps_its_error_fields() -> None:
    state = RecipientState(
        R.FAILED, failed_at=at(1), error_code="UNKNOWN_OUTCOME", error_message="unknown"
    )
    assert apply_receipt(state, delivered(3)) == RecipientState(
        R.DELIVERED,
        delivered_at=at(3),
        failed_at=at(1),
        error_code="UNKNOWN_OUTCOME",
        error_message="unknown",
    )


def test_a_receipt_may_overtake_the_send_response() -> None:
    assert apply_receipt(RecipientState(R.SENDING), delivered(1)).status is R.DELIVERED


@pytest.mark.parametrize("status", [R.QUEUED, R.CANCELLED])
@pytest.mark.parametrize("receipt", [delivered(1), read(1)])
def test_receipts_do_not_touch_unsent_or_cancelled_rows(status: R, receipt: Receipt) -> None:
    state = RecipientState(status)
    assert apply_receipt(state, receipt) is state


# --- properties -------------------------------------------------------------------------

times = st.integers(min_value=0, max_value=60).map(at)
receipts = st.builds(
    Receipt,
    provider_message_id=st.just("m1"),
    status=st.sampled_from(ReceiptStatus),
    at=times,
    error_code=st.none() | st.sampled_from(["131026", "NOT_ON_WHATSAPP"]),
    error_message=st.none() | st.just("failed"),
)


@st.composite
def states(draw: st.DrawFn) -> RecipientState:
    """Any state a recipient can be in, with the timestamps its status implies."""
    status = draw(st.sampled_from(R))
    delivered_at = read_at = failed_at = None
    code = message = None
    if status in (R.DELIVERED, R.READ):
        delivered_at = draw(times)
    if status is R.READ:
        assert delivered_at is not None
        read_at = delivered_at + timedelta(seconds=draw(st.integers(0, 30)))
    if status is R.FAILED:
        failed_at, code, message = draw(times), "UNKNOWN_OUTCOME", "unknown"
    return RecipientState(status, delivered_at, read_at, failed_at, code, message)


@given(states(), receipts)
def test_status_only_moves_along_the_table(state: RecipientState, receipt: Receipt) -> None:
    new = apply_receipt(state, receipt)
    assert new.status is state.status or can_transition(state.status, new.status)


@given(states(), receipts)
def test_a_repeated_receipt_changes_nothing(state: RecipientState, receipt: Receipt) -> None:
    once = apply_receipt(state, receipt)
    assert apply_receipt(once, receipt) == once


@given(states(), st.lists(receipts, max_size=6))
def test_delivered_and_read_timestamps_stay_consistent(
    state: RecipientState, batch: list[Receipt]
) -> None:
    for receipt in batch:
        state = apply_receipt(state, receipt)
        if state.status in (R.DELIVERED, R.READ):
            assert state.delivered_at is not None
        if state.status is R.READ:
            assert state.read_at is not None
            assert state.delivered_at is not None
            assert state.delivered_at <= state.read_at


@given(
    st.sampled_from([R.SENDING, R.SENT]).map(RecipientState)
    | st.just(RecipientState(R.FAILED, failed_at=at(0), error_code="UNKNOWN_OUTCOME")),
    st.lists(receipts, max_size=6).flatmap(lambda rs: st.tuples(st.just(rs), st.permutations(rs))),
)
def test_arrival_order_does_not_change_the_outcome(
    start: RecipientState, batches: tuple[list[Receipt], list[Receipt]]
) -> None:
    """Applied one by one as they arrive (no sorting), any order ends in the same
    status, delivered_at and read_at, for every status a message is in once it
    was handed to the provider. (Not for ``queued``: the table allows
    queued -> failed -> delivered but not queued -> delivered.)"""
    first, second = start, start
    for receipt in batches[0]:
        first = apply_receipt(first, receipt)
    for receipt in batches[1]:
        second = apply_receipt(second, receipt)
    assert (first.status, first.delivered_at, first.read_at) == (
        second.status,
        second.delivered_at,
        second.read_at,
    )


# --- the simulator's webhook ------------------------------------------------------------


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {SESSION_HEADER: "business_1", SIGNATURE_HEADER: sign_simulator_webhook(secret, body)}


def test_signed_receipts_round_trip() -> None:
    sent = [delivered(1), read(2), failed(3)]
    body = receipts_body(sent)
    assert parse_simulator_webhook(SECRET, signed(body), body) == sent


def test_signature_is_hmac_sha256_of_the_raw_body() -> None:
    # Reference value from: printf '{"receipts": []}' | openssl dgst -sha256 -hmac s3cret
    assert sign_simulator_webhook(SECRET, b'{"receipts": []}') == (
        "sha256=2789139de367ba9fc5cfe0717664ff75bae81743badb1a06f56cfaad3acb9a36"
    )


def test_headers_are_case_insensitive() -> None:
    body = receipts_body([delivered(1)])
    headers = {k.lower(): v for k, v in signed(body).items()}
    assert len(parse_simulator_webhook(SECRET, headers, body)) == 1
    assert session_id_from_headers(headers) == "business_1"


@pytest.mark.parametrize("value", [None, "", "   "])
def test_a_missing_or_blank_session_header_names_no_session(value: str | None) -> None:
    assert session_id_from_headers({} if value is None else {SESSION_HEADER: value}) is None


BODY = receipts_body([delivered(1)])


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {SIGNATURE_HEADER: ""},
        {SIGNATURE_HEADER: sign_simulator_webhook("other", BODY)},
        {SIGNATURE_HEADER: sign_simulator_webhook(SECRET, BODY).removeprefix("sha256=")},
        {SIGNATURE_HEADER: sign_simulator_webhook(SECRET, BODY).replace("sha256", "sha1")},
        {SIGNATURE_HEADER: sign_simulator_webhook(SECRET, BODY + b" ")},
        {SIGNATURE_HEADER: "sha256=\u00e9" + "0" * 63},
    ],
    ids=["missing", "empty", "other-secret", "no-prefix", "sha1", "other-body", "non-ascii"],
)
def test_forged_signatures_are_rejected(headers: dict[str, str]) -> None:
    with pytest.raises(WebhookSignatureInvalid) as caught:
        parse_simulator_webhook(SECRET, headers, BODY)
    assert isinstance(caught.value, WebhookRejected)


def test_the_signature_is_checked_before_the_body_is_read() -> None:
    with pytest.raises(WebhookSignatureInvalid):
        parse_simulator_webhook(SECRET, {SIGNATURE_HEADER: "sha256=00"}, b"not json")


def _item(**overrides: object) -> dict[str, object]:
    return {"provider_message_id": "m1", "status": "delivered", "at": "2026-11-28T12:00:01Z"} | (
        overrides
    )


@pytest.mark.parametrize(
    "document",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"{}",
        json.dumps({"receipts": [_item()], "extra": 1}).encode(),
        json.dumps({"receipts": [_item(extra=1)]}).encode(),
        json.dumps({"receipts": [_item(status="sent")]}).encode(),
        json.dumps({"receipts": [_item(at="2026-11-28T12:00:01")]}).encode(),
        json.dumps({"receipts": [_item(at=1764331201)]}).encode(),
        json.dumps({"receipts": [_item(provider_message_id=7)]}).encode(),
        json.dumps({"receipts": [_item(provider_message_id="")]}).encode(),
        json.dumps({"receipts": [_item(error_code="X")]}).encode(),
        json.dumps({"receipts": {"0": _item()}}).encode(),
        json.dumps({"receipts": [_item()] * (MAX_RECEIPTS + 1)}).encode(),
    ],
    ids=[
        "not-json",
        "not-utf8",
        "array",
        "no-receipts",
        "extra-field",
        "extra-item-field",
        "bad-status",
        "naive-time",
        "numeric-time",
        "numeric-id",
        "empty-id",
        "error-on-delivered",
        "receipts-not-a-list",
        "too-many",
    ],
)
def test_malformed_bodies_are_rejected(document: bytes) -> None:
    with pytest.raises(WebhookBodyInvalid) as caught:
        parse_simulator_webhook(SECRET, signed(document), document)
    assert isinstance(caught.value, WebhookRejected)


def test_times_keep_their_zone_and_an_empty_list_is_fine() -> None:
    document = json.dumps({"receipts": [_item(at="2026-11-28T14:00:01+02:00")]}).encode()
    (receipt,) = parse_simulator_webhook(SECRET, signed(document), document)
    assert receipt.at == at(1)
    empty = b'{"receipts": []}'
    assert parse_simulator_webhook(SECRET, signed(empty), empty) == []
