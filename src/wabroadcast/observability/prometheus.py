"""Prometheus metrics: sends, their latency and queue wait, slot leases, retries, backlog.

The dispatcher records with the three ``record_*`` functions; ``GET /metrics``
renders everything, adding gauges it reads from the database at scrape time
(pending recipients and active broadcasts per tenant), so those are right
whichever process answers and need no process to keep them up to date.

Every label value is from a fixed set, so the number of series stays bounded
whatever the traffic: provider kinds, send outcomes and our error-code
taxonomy, anything else becomes ``other``; no phone number, broadcast id or
free text ever becomes a label. Tenant ids label only the database gauges,
one series per tenant.

Several processes: when ``PROMETHEUS_MULTIPROC_DIR`` names a directory in a
process's environment at start, prometheus-client keeps that process's samples
in files there, and an exposition from any process sharing the directory sums
the samples of all of them, the dead ones included (counters never go back).
``wabroadcast serve`` and the ``wabroadcast worker`` processes of one machine
share one directory and ``serve``'s ``/metrics`` shows them all; a worker on
another machine serves its own with ``--metrics-port``. Empty the directory
when the whole group of processes restarts, never while one of them runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from wabroadcast.providers.base import SendOutcome
from wabroadcast.providers.registry import PLUGINS

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "other"

PROVIDERS = frozenset(PLUGINS)
OUTCOMES = frozenset(outcome.value for outcome in SendOutcome)
# Our error taxonomy: every provider maps its own codes to these.
ERROR_CODES = frozenset(
    {
        "NOT_ON_WHATSAPP",
        "INVALID_NUMBER",
        "BLOCKED_BY_RECIPIENT",
        "TIMEOUT",
        "CONNECTION_REFUSED",
        "RATE_LIMITED",
        "SERVER_ERROR",
        "SESSION_DISCONNECTED",
        "ACCOUNT_RESTRICTED",
        "SPAM_FLAGGED",
        "UNKNOWN_OUTCOME",
        "DELIVERY_FAILED",
    }
)
LEASE_EVENTS = ("acquired", "renewed", "lost", "released")

# From a fast gateway on the same network to a slow WhatsApp Web session.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Paced sessions send a few a minute, so the last of a long list waits for hours.
QUEUE_WAIT_BUCKETS_S = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400)


def _multiprocess_dir() -> str | None:
    directory = os.environ.get(MULTIPROC_DIR_ENV)
    if directory:
        # prometheus-client writes there from the first sample on; it must exist.
        os.makedirs(directory, exist_ok=True)
    return directory or None


MULTIPROCESS_DIR = _multiprocess_dir()

SENDS = Counter(
    "wabroadcast_sends",
    "Provider calls to send a message, by the provider's outcome and our error code.",
    ["provider", "outcome", "error_code"],
)
SEND_LATENCY = Histogram(
    "wabroadcast_send_latency_seconds",
    "Duration of one provider send call.",
    ["provider", "outcome"],
    buckets=LATENCY_BUCKETS_S,
)
QUEUE_WAIT = Histogram(
    "wabroadcast_send_queue_wait_seconds",
    "From when a recipient became due (queued, or its retry time) to the start of its send.",
    ["provider"],
    buckets=QUEUE_WAIT_BUCKETS_S,
)
LEASES = Counter(
    "wabroadcast_lease_events",
    "Send-slot lease events: acquired, renewed, lost (taken over), released.",
    ["event"],
)
RETRIES = Counter(
    "wabroadcast_send_retries",
    "Recipients put back in the queue to be sent again after a transient error.",
    ["provider", "error_code"],
)
# Every lease event is a series from the start, so rates and alerts see zeros.
for _event in LEASE_EVENTS:
    LEASES.labels(_event)


def bounded(value: str, allowed: Iterable[str]) -> str:
    """``value`` if it is one of ``allowed``, else ``other``."""
    return value if value in allowed else OTHER


def error_code_label(error_code: str | None) -> str:
    """The label of an error code: itself if ours, ``other`` if not, ``""`` for none."""
    if error_code is None or error_code == "":
        return ""
    return bounded(error_code, ERROR_CODES)


def record_send(
    provider: str,
    outcome: str,
    error_code: str | None,
    latency_s: float,
    queue_wait_s: float | None,
) -> None:
    """One provider send call ended with ``outcome`` (a ``SendOutcome`` value).

    ``queue_wait_s`` is None when unknown. Negative durations (clocks of two
    machines) count as zero.
    """
    provider_label = bounded(provider, PROVIDERS)
    outcome_label = bounded(outcome, OUTCOMES)
    SENDS.labels(provider_label, outcome_label, error_code_label(error_code)).inc()
    SEND_LATENCY.labels(provider_label, outcome_label).observe(max(0.0, latency_s))
    if queue_wait_s is not None:
        QUEUE_WAIT.labels(provider_label).observe(max(0.0, queue_wait_s))


def record_call(
    provider: str,
    sends: Iterable[tuple[str, str | None, float | None]],
    latency_s: float,
) -> None:
    """The sends of one provider call: (outcome, error code, queue wait or None) each.

    The same as ``record_send`` for each, with the label lookups done once per
    outcome rather than once per message (a call may carry hundreds).
    """
    provider_label = bounded(provider, PROVIDERS)
    queue_wait = QUEUE_WAIT.labels(provider_label)
    counts: dict[tuple[str, str | None], int] = {}
    for outcome, error_code, queue_wait_s in sends:
        key = (outcome, error_code)
        counts[key] = counts.get(key, 0) + 1
        if queue_wait_s is not None:
            queue_wait.observe(max(0.0, queue_wait_s))
    for (outcome, error_code), count in counts.items():
        outcome_label = bounded(outcome, OUTCOMES)
        SENDS.labels(provider_label, outcome_label, error_code_label(error_code)).inc(count)
        latency = SEND_LATENCY.labels(provider_label, outcome_label)
        for _ in range(count):
            latency.observe(max(0.0, latency_s))


def record_lease(event: str) -> None:
    """A send-slot lease was ``acquired``, ``renewed``, ``lost`` or ``released``."""
    LEASES.labels(bounded(event, LEASE_EVENTS)).inc()


def record_retry(provider: str, error_code: str | None) -> None:
    """A recipient goes back to the queue for another attempt after a transient error."""
    RETRIES.labels(bounded(provider, PROVIDERS), error_code_label(error_code)).inc()


@dataclass(frozen=True, slots=True)
class DatabaseGauges:
    """Numbers read from the database at scrape time, per tenant id."""

    pending_by_tenant: Mapping[int, int] = field(default_factory=dict)
    active_broadcasts_by_tenant: Mapping[int, int] = field(default_factory=dict)


def recorded_metrics() -> Collector:
    """What this process recorded, or, in multiprocess mode, what every process recorded."""
    if MULTIPROCESS_DIR is None:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=MULTIPROCESS_DIR)  # type: ignore[no-untyped-call]
    return registry


class _Exposition(Collector):
    """The recorded metrics plus the database gauges of one scrape."""

    def __init__(self, recorded: Collector, database: DatabaseGauges | None) -> None:
        self.recorded = recorded
        self.database = database

    def collect(self) -> Iterable[Metric]:
        yield from self.recorded.collect()
        up = GaugeMetricFamily(
            "wabroadcast_database_up",
            "1 when this scrape could read the database gauges, else 0.",
        )
        up.add_metric([], 0.0 if self.database is None else 1.0)
        yield up
        if self.database is None:
            return
        pending = GaugeMetricFamily(
            "wabroadcast_pending_recipients",
            "Recipients queued or sending in the tenant's active broadcasts.",
            labels=["tenant_id"],
        )
        for tenant_id, count in sorted(self.database.pending_by_tenant.items()):
            pending.add_metric([str(tenant_id)], float(count))
        yield pending
        active = GaugeMetricFamily(
            "wabroadcast_active_broadcasts",
            "The tenant's broadcasts that are scheduled, queued, running or paused.",
            labels=["tenant_id"],
        )
        for tenant_id, count in sorted(self.database.active_broadcasts_by_tenant.items()):
            active.add_metric([str(tenant_id)], float(count))
        yield active


def render(database: DatabaseGauges | None, accept: str | None) -> tuple[bytes, str]:
    """The exposition body and its content type, in the format ``accept`` asks for.

    ``database`` None means the database could not be read for this scrape.
    """
    encoder, content_type = choose_encoder(accept or "")
    return encoder(_Exposition(recorded_metrics(), database)), content_type


def serve_process_metrics(port: int, host: str) -> None:
    """Serve the recorded metrics at ``http://host:port/metrics`` from a background thread.

    For a ``wabroadcast worker`` on a machine without a ``serve`` sharing its
    multiprocess directory.
    """
    start_http_server(port, addr=host, registry=recorded_metrics())
