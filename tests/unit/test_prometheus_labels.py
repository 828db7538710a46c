"""Prometheus label values come from fixed sets, whatever the recording code is given."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from wabroadcast.observability import prometheus
from wabroadcast.observability.prometheus import (
    ERROR_CODES,
    OTHER,
    OUTCOMES,
    PROVIDERS,
    error_code_label,
    record_lease,
    record_retry,
    record_send,
)
from wabroadcast.providers.base import SendOutcome
from wabroadcast.providers.simulator import rules as simulator
from wabroadcast.receipts.service import DEFAULT_FAILED_CODE


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def label_values(metric_name: str, label: str) -> set[str]:
    return {
        s.labels[label]
        for family in REGISTRY.collect()
        if family.name == metric_name
        for s in family.samples
        if label in s.labels
    }


def test_every_error_code_the_code_base_produces_is_a_label_of_its_own() -> None:
    produced = set(simulator.ERRORS) | {"UNKNOWN_OUTCOME", DEFAULT_FAILED_CODE}
    assert produced <= ERROR_CODES
    assert {outcome.value for outcome in SendOutcome} == OUTCOMES
    assert simulator.KIND in PROVIDERS


@pytest.mark.parametrize(
    ("code", "label"),
    [
        (None, ""),
        ("", ""),
        ("NOT_ON_WHATSAPP", "NOT_ON_WHATSAPP"),
        ("RATE_LIMITED", "RATE_LIMITED"),
        ("+972502345678", OTHER),
        ("not_on_whatsapp", OTHER),
        ("131026", OTHER),  # a Meta error number that a provider failed to map
    ],
)
def test_error_codes_outside_the_taxonomy_become_other(code: str | None, label: str) -> None:
    assert error_code_label(code) == label


@given(st.text(max_size=80))
def test_no_text_becomes_a_label_outside_the_fixed_set(code: str) -> None:
    assert error_code_label(code) in ERROR_CODES | {"", OTHER}


def test_sends_are_counted_under_bounded_labels_only() -> None:
    before = sample("wabroadcast_sends_total", provider=OTHER, outcome=OTHER, error_code=OTHER)
    for phone in ("+972502345678", "+972523456789", "broadcast 17"):
        record_send(f"gateway-{phone}", phone, phone, 0.1, 1.0)
    after = sample("wabroadcast_sends_total", provider=OTHER, outcome=OTHER, error_code=OTHER)
    assert after - before == 3
    assert label_values("wabroadcast_sends", "provider") <= PROVIDERS | {OTHER}
    assert label_values("wabroadcast_sends", "outcome") <= OUTCOMES | {OTHER}
    assert label_values("wabroadcast_sends", "error_code") <= ERROR_CODES | {"", OTHER}
    assert label_values("wabroadcast_send_retries", "error_code") <= ERROR_CODES | {"", OTHER}


def test_a_send_feeds_the_counter_and_both_histograms() -> None:
    labels = {"provider": "simulator", "outcome": "retry_later"}
    sends = sample("wabroadcast_sends_total", **labels, error_code="TIMEOUT")
    latency_count = sample("wabroadcast_send_latency_seconds_count", **labels)
    latency_sum = sample("wabroadcast_send_latency_seconds_sum", **labels)
    fast = sample("wabroadcast_send_latency_seconds_bucket", **labels, le="0.05")
    waits = sample("wabroadcast_send_queue_wait_seconds_count", provider="simulator")
    wait_sum = sample("wabroadcast_send_queue_wait_seconds_sum", provider="simulator")

    record_send("simulator", "retry_later", "TIMEOUT", 0.04, 42.0)
    record_send("simulator", "retry_later", "TIMEOUT", 7.0, None)  # queue wait unknown
    record_send("simulator", "retry_later", "TIMEOUT", -0.5, -3.0)  # clocks disagree: zero

    assert sample("wabroadcast_sends_total", **labels, error_code="TIMEOUT") - sends == 3
    assert sample("wabroadcast_send_latency_seconds_count", **labels) - latency_count == 3
    assert sample("wabroadcast_send_latency_seconds_sum", **labels) - latency_sum == pytest.approx(
        7.04
    )
    assert sample("wabroadcast_send_latency_seconds_bucket", **labels, le="0.05") - fast == 2
    assert sample("wabroadcast_send_queue_wait_seconds_count", provider="simulator") - waits == 2
    assert sample("wabroadcast_send_queue_wait_seconds_sum", provider="simulator") - wait_sum == (
        pytest.approx(42)
    )


def test_lease_events_exist_from_the_start_and_unknown_ones_are_other() -> None:
    families = {family.name: family for family in REGISTRY.collect()}
    events = {s.labels["event"] for s in families["wabroadcast_lease_events"].samples}
    assert set(prometheus.LEASE_EVENTS) <= events
    before = {event: sample("wabroadcast_lease_events_total", event=event) for event in events}
    record_lease("renewed")
    record_lease("stolen")
    assert sample("wabroadcast_lease_events_total", event="renewed") - before["renewed"] == 1
    assert sample("wabroadcast_lease_events_total", event=OTHER) - before.get(OTHER, 0) == 1


def test_retries_are_counted_by_provider_and_error_code() -> None:
    before = sample("wabroadcast_send_retries_total", provider="simulator", error_code="")
    record_retry("simulator", None)
    record_retry("simulator", "")
    assert (
        sample("wabroadcast_send_retries_total", provider="simulator", error_code="") - before == 2
    )


def test_one_call_counts_each_send_once_by_outcome() -> None:
    sent = {"provider": "simulator", "outcome": "sent", "error_code": ""}
    failed = {"provider": "simulator", "outcome": "failed", "error_code": "NOT_ON_WHATSAPP"}
    latency = {"provider": "simulator", "outcome": "sent"}
    before = (
        sample("wabroadcast_sends_total", **sent),
        sample("wabroadcast_sends_total", **failed),
        sample("wabroadcast_send_latency_seconds_count", **latency),
        sample("wabroadcast_send_queue_wait_seconds_count", provider="simulator"),
    )
    prometheus.record_call(
        "simulator",
        [("sent", None, 1.0), ("failed", "NOT_ON_WHATSAPP", None), ("sent", None, 2.0)],
        0.01,
    )
    after = (
        sample("wabroadcast_sends_total", **sent),
        sample("wabroadcast_sends_total", **failed),
        sample("wabroadcast_send_latency_seconds_count", **latency),
        sample("wabroadcast_send_queue_wait_seconds_count", provider="simulator"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 2, 2]
