"""Dispatch figures: how fast one ``wabroadcast worker`` process sends, and its memory.

Every figure comes from a real ``wabroadcast worker`` child process (started like
tests/e2e/test_faults.py does: ``python -m wabroadcast worker`` with
``WABROADCAST_LOG_LEVEL=warning``, every other setting at its default) against a
scratch database. The database is seeded directly with SQL (a tenant, its
sessions with a ``SimulatorScenario`` row each, one ``queued`` broadcast per
session whose counters match its recipients, the recipients by COPY on
PostgreSQL), so what is measured is the worker alone, not the ingest API. Every
session is unpaced (``rate_per_minute`` 0, ``jitter_ms`` 0). Phone numbers come
from a seeded ``random.Random``; the shapes are the constants below. The
worker's log is kept aside and summarized on stderr (each warning message with
its count), so stdout holds only the figures. The seeded tables are VACUUM
ANALYZEd, as autovacuum would have done on a live database.

The two throughput figures are each the best of RUNS (3) runs, each on a fresh
database; every run and their median go to stderr. As ``timeit`` does: on a
shared machine, other work can only slow a run down, so the fastest run is the
closest to what the code itself costs. The spread is real on this machine: the
same pure-Python loop was seen to take 0.65 s and 1.04 s a minute apart, with
nothing else running in the VM.

``dispatch_recipients_per_s_{sqlite,postgres}``
    DISPATCH: 8 sessions x ``max_concurrency`` 2 (16 send slots), 5,000 recipients
    each, 40,000 in all, on both backends; simulator latency 0 and no "delivered"
    receipts (``deliver_after_ms`` null), so every recipient costs exactly what
    sending it costs. Timed with the worker's own timestamps: from the earliest
    broadcast ``started_at`` (written by the claim committed just before the first
    send) to the latest ``finished_at`` (written when the last broadcast became
    ``completed``); the bench polls the database every 0.2 s until all are
    ``completed`` and checks that all 40,000 are ``sent`` and none failed. The
    worker's CPU use over the same stretch goes to stderr. A slot's first claim
    is small (``Tuning.first_claim``) and later ones about two seconds of work, so a run
    much shorter than a few seconds would mostly measure that ramp.
``fanout_msgs_per_s`` (PostgreSQL only)
    FANOUT: 1,000 sessions of one tenant x ``max_concurrency`` 1, 30 recipients
    each (30,000 sends), simulator latency 100 ms, no receipts. The ideal is
    1,000 sessions / 0.1 s = 10,000 msgs/s, so the whole run takes at least 3 s;
    30 per session is more than one claim (a slot's first claim is 10), so the
    figure includes moving from one batch to the next, as a long broadcast does.
    The rate is the number of first sends in the simulator's own send log (not
    repeats of a recovered send, which reach nobody), which must equal the
    recipients, divided by the same window as the dispatch figure: from the
    earliest broadcast ``started_at`` (the first claim) to the latest
    ``finished_at`` (the last results written), so start-up and tail are
    included and it can never exceed the ideal. Diagnostics go to stderr: the
    send log's own span (first send's start to last send's end) and the rate
    over it, the average
    number of sends in flight over it, how long after the first session the last
    one began sending, and how many sends were repeats. SQLite
    is skipped: it has one writer at a time, so 1,000 concurrent sessions there
    measure its write lock, not the dispatcher.
``worker_peak_rss_mb`` / ``worker_peak_rss_mb_10k`` (PostgreSQL only)
    RSS_1M / RSS_10K: one session x ``max_concurrency`` 4 with one broadcast of
    1,000,000 (resp. 10,000) recipients, simulator latency 0 and its default
    "delivered" receipts (after 2 s), as a real broadcast gets. The worker runs for
    20 s (RSS_RUN_S) from its start (a bounded part of the 1M broadcast; the 10k
    one may finish and idle); its VmRSS is sampled every 0.2 s and the peak is
    reported; how many were sent in that time goes to stderr. The two figures
    side by side show whether memory grows with the broadcast's size.

Sizes were chosen to keep ``make bench`` (with the 100,000-recipient ingest
and the metrics bench) under 10 minutes: about 30 s per dispatch run (seeding
included), about 15 s per fan-out run and about 55 s for the two RSS runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from bench.support import (
    cpu_seconds,
    report,
    rss_mb,
    running_worker,
    scratch_database,
    wabroadcast,
)
from wabroadcast.db.engine import Database
from wabroadcast.db.models import (
    Tenant,
    WhatsAppBroadcast,
    WhatsAppBroadcastRecipient,
    WhatsAppSession,
)
from wabroadcast.domain.status import BroadcastStatus, RecipientStatus
from wabroadcast.providers.simulator.models import SimulatorScenario, SimulatorSend

B = WhatsAppBroadcast
FINAL = frozenset({"completed", "partial", "failed", "cancelled"})
POLL_S = 0.2
RSS_SAMPLE_S = 0.2
RSS_RUN_S = 20.0
COPY_CHUNK = 100_000
SEED = 20261128
# Each throughput figure is the best of this many runs (each on a fresh database).
RUNS = 3
ANALYZED_TABLES = (
    "whatsapp_broadcast_recipients",
    "whatsapp_broadcasts",
    "whatsapp_sessions",
    "session_leases",
    "simulator_scenarios",
    "simulator_sends",
)


@dataclass(frozen=True, slots=True)
class Shape:
    """What the seeded database holds: sessions, their slots, recipients and simulator."""

    sessions: int
    max_concurrency: int
    recipients_per_session: int
    latency_ms: int
    deliver_after_ms: int | None  # None: the simulator sends no "delivered" receipts
    # Each recipient has its own text (a personal message, rendered when it was accepted).
    personal: bool = False

    @property
    def total(self) -> int:
        return self.sessions * self.recipients_per_session


DISPATCH = Shape(
    sessions=8, max_concurrency=2, recipients_per_session=5000, latency_ms=0, deliver_after_ms=None
)
DISPATCH_PERSONAL = Shape(
    sessions=8,
    max_concurrency=2,
    recipients_per_session=5000,
    latency_ms=0,
    deliver_after_ms=None,
    personal=True,
)
FANOUT = Shape(
    sessions=1000,
    max_concurrency=1,
    recipients_per_session=30,
    latency_ms=100,
    deliver_after_ms=None,
)
RSS_1M = Shape(
    sessions=1,
    max_concurrency=4,
    recipients_per_session=1_000_000,
    latency_ms=0,
    deliver_after_ms=2000,
)
RSS_10K = Shape(
    sessions=1,
    max_concurrency=4,
    recipients_per_session=10_000,
    latency_ms=0,
    deliver_after_ms=2000,
)


def note(text: str) -> None:
    """Context for a figure, on stderr so stdout keeps only ``name: value unit`` lines."""
    print(f"# {text}", file=sys.stderr, flush=True)


def _phones(count: int, seed: int) -> list[str]:
    """Distinct Israeli mobile numbers in E.164, the same for the same seed."""
    rng = random.Random(seed)
    return [f"+9725{national:08d}" for national in rng.sample(range(10**8), count)]


# --- seeding ---------------------------------------------------------------------------


async def seed(
    url: str,
    shape: Shape,
    *,
    provider: str = "simulator",
    session_values: Callable[[str], dict[str, Any]] | None = None,
) -> None:
    """A tenant, ``shape.sessions`` unpaced sessions of ``provider`` (simulator sessions
    with their scenario; ``session_values(session_id)`` adds columns such as the config)
    and one queued broadcast each."""
    database = Database(url)
    now = datetime.now(UTC)
    phones = _phones(shape.recipients_per_session, SEED)
    try:
        async with database.transaction() as db:
            tenant = Tenant(
                name="Bench",
                api_key_hash=hashlib.sha256(b"bench").hexdigest(),
                api_key_prefix="wab_bench",
                default_region="IL",
                created_at=now,
            )
            db.add(tenant)
            await db.flush()
            tenant_id = tenant.id
            session_ids = [f"bench_{n}" for n in range(shape.sessions)]
            await db.execute(
                insert(WhatsAppSession),
                [
                    {
                        "id": session_id,
                        "tenant_id": tenant_id,
                        "provider": provider,
                        "config": {},
                        "is_default": n == 0,
                        "max_concurrency": shape.max_concurrency,
                        "rate_per_minute": 0.0,
                        "jitter_ms": 0,
                        "lease_epoch_seq": 0,
                        "webhook_secret": hashlib.sha256(session_id.encode()).hexdigest(),
                        "webhook_key": session_id,
                        "created_at": now,
                        **(session_values(session_id) if session_values else {}),
                    }
                    for n, session_id in enumerate(session_ids)
                ],
            )
            if provider == "simulator":
                await db.execute(
                    insert(SimulatorScenario),
                    [
                        {
                            "session_id": session_id,
                            "connected": True,
                            "status_delay_ms": 0,
                            "latency_ms": shape.latency_ms,
                            "fail_numbers": {},
                            "fail_rate": 0.0,
                            "deliver_after_ms": shape.deliver_after_ms,
                            "in_flight_high_water_mark": 0,
                            "updated_at": now,
                        }
                        for session_id in session_ids
                    ],
                )
            created = (
                await db.execute(
                    insert(B).returning(B.id, B.session_id, sort_by_parameter_order=True),
                    [
                        {
                            "tenant_id": tenant_id,
                            "session_id": session_id,
                            "status": BroadcastStatus.QUEUED.value,
                            "message": f"Bench message for {session_id}",
                            "connection_check": "connected",
                            "total_recipients": shape.recipients_per_session,
                            "invalid_recipients_count": 0,
                            "duplicates_removed": 0,
                            "invalid_recipients": [],
                            "queued_count": shape.recipients_per_session,
                            "created_at": now,
                            "queued_at": now,
                            "updated_at": now,
                        }
                        for session_id in session_ids
                    ],
                )
            ).all()
            broadcasts = [(int(row[0]), str(row[1])) for row in created]
            texts = personal_texts(phones) if shape.personal else None
            if database.is_sqlite:
                await insert_recipients(db, broadcasts, tenant_id, phones, now, texts)
            else:
                await copy_recipients(db, broadcasts, tenant_id, phones, now, texts)
    finally:
        await database.dispose()


def personal_texts(phones: Sequence[str]) -> list[str]:
    """What a ``Hello {{name}}, …`` message renders to for each recipient: a text each."""
    return [
        f"Hello Customer {n}, your order {phone[-6:]} is ready for pickup at our store."
        for n, phone in enumerate(phones)
    ]


async def insert_recipients(
    db: AsyncSession,
    broadcasts: Sequence[tuple[int, str]],
    tenant_id: int,
    phones: Sequence[str],
    now: datetime,
    texts: Sequence[str] | None = None,
) -> None:
    for broadcast_id, session_id in broadcasts:
        await db.execute(
            insert(WhatsAppBroadcastRecipient),
            [
                {
                    "broadcast_id": broadcast_id,
                    "tenant_id": tenant_id,
                    "session_id": session_id,
                    "raw_input": phone,
                    "phone": phone,
                    "rendered_message": None if texts is None else texts[n],
                    "status": RecipientStatus.QUEUED.value,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "queued_at": now,
                    "updated_at": now,
                }
                for n, phone in enumerate(phones)
            ],
        )


async def copy_recipients(
    db: AsyncSession,
    broadcasts: Sequence[tuple[int, str]],
    tenant_id: int,
    phones: Sequence[str],
    now: datetime,
    texts: Sequence[str] | None = None,
) -> None:
    """COPY with the column list of broadcasts/repository/broadcasts.py ``_copy_recipients``."""
    stamp = now.isoformat()
    connection = await db.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    columns = (
        "broadcast_id, tenant_id, session_id, raw_input, phone, lead_id, name, "
        "rendered_message, status, attempts, next_attempt_at, queued_at, updated_at"
    )
    tail = f"\t{RecipientStatus.QUEUED.value}\t0\t{stamp}\t{stamp}\t{stamp}\n"
    own = ["\\N"] * len(phones) if texts is None else list(texts)
    async with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY whatsapp_broadcast_recipients ({columns}) FROM STDIN") as copy,
    ):
        for broadcast_id, session_id in broadcasts:
            head = f"{broadcast_id}\t{tenant_id}\t{session_id}\t"
            for start in range(0, len(phones), COPY_CHUNK):
                chunk = zip(
                    phones[start : start + COPY_CHUNK], own[start : start + COPY_CHUNK], strict=True
                )
                await copy.write(
                    "".join(f"{head}{p}\t{p}\t\\N\t\\N\t{t}{tail}" for p, t in chunk).encode()
                )


def prepare(url: str, shape: Shape) -> None:
    wabroadcast("db", "upgrade", env={"WABROADCAST_DATABASE_URL": url})
    asyncio.run(seed(url, shape))
    if url.startswith("postgresql"):
        analyze(url)


def analyze(url: str) -> None:
    """VACUUM ANALYZE the seeded tables, as autovacuum would have on a live database
    (where it is on, it might otherwise pick them up in the middle of a run, changing
    its plans; where it is off, the plans would rest on no statistics at all)."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in ANALYZED_TABLES:
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))


# --- the worker process ------------------------------------------------------------------

_LOG_LINE = re.compile(r"\[(warning|error|critical)\s*\] (.+?)(?:\s+\w+=|$)")


@contextlib.contextmanager
def worker_process(url: str, name: str, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """A worker whose log is kept aside and summarized on stderr (one line per message)."""
    with tempfile.TemporaryDirectory(prefix="wab-bench-worker-") as tmp:
        log_path = Path(tmp) / "worker.log"
        try:
            with running_worker(url, log_path, **env) as process:
                yield process
        finally:
            _summarize_log(name, log_path)


def _summarize_log(name: str, log_path: Path) -> None:
    """Each logged warning or error with its count; of anything else (tracebacks, say)
    the unindented lines, which name the exceptions, with theirs."""
    lines = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
    counts: Counter[str] = Counter()
    other: Counter[str] = Counter()
    for line in lines:
        match = _LOG_LINE.search(line)
        if match:
            counts[f"{match.group(1)} {match.group(2).strip()!r}"] += 1
        elif line.strip() and not line[0].isspace():
            other[line.strip()[:300]] += 1
    if counts:
        note(f"{name}: the worker logged " + "; ".join(f"{n:,} x {m}" for m, n in counts.items()))
    for line, count in other.most_common(8):
        note(f"{name}: worker output, {count:,} x: {line}")


# --- reading progress --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Progress:
    finished: int
    sent: int
    failed: int
    first_started: datetime | None
    last_finished: datetime | None


async def _progress(engine: AsyncEngine) -> Progress:
    # A plain engine (no BEGIN IMMEDIATE): on SQLite these reads never take the write lock.
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(
                    func.count().filter(B.status.in_(FINAL)),
                    func.coalesce(func.sum(B.sent_count + B.delivered_count + B.read_count), 0),
                    func.coalesce(func.sum(B.failed_count), 0),
                    func.min(B.started_at),
                    func.max(B.finished_at),
                )
            )
        ).one()
    return Progress(int(row[0]), int(row[1]), int(row[2]), row[3], row[4])


@dataclass(frozen=True, slots=True)
class Finished:
    """Every broadcast final, and the worker's CPU use (cores) while it was sending."""

    progress: Progress
    cpu_cores: float


async def wait_all_final(
    engine: AsyncEngine, shape: Shape, worker: subprocess.Popen[bytes], timeout_s: float
) -> Finished:
    deadline = time.monotonic() + timeout_s
    sending_since: tuple[float, float] | None = None  # (monotonic time, worker CPU seconds)
    while True:
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited with {worker.returncode}")
        cpu = cpu_seconds(worker.pid)
        progress = await _progress(engine)
        now = time.monotonic()
        if sending_since is None and progress.first_started is not None:
            sending_since = (now, cpu)
        if progress.finished == shape.sessions:
            if progress.sent != shape.total or progress.failed:
                raise RuntimeError(f"expected {shape.total} sent and none failed: {progress}")
            assert sending_since is not None
            cores = (cpu - sending_since[1]) / max(now - sending_since[0], 1e-9)
            return Finished(progress, cores)
        if now > deadline:
            raise RuntimeError(f"broadcasts not finished within {timeout_s:.0f} s: {progress}")
        await asyncio.sleep(POLL_S)


# --- the figures ---------------------------------------------------------------------------


async def _measure_dispatch(url: str, shape: Shape, name: str) -> tuple[float, float]:
    """Recipients per second from first claim to last completion, and the worker's cores."""
    engine = create_async_engine(url)
    try:
        with worker_process(url, name) as worker:
            done = await wait_all_final(engine, shape, worker, timeout_s=180)
    finally:
        await engine.dispose()
    first, last = done.progress.first_started, done.progress.last_finished
    assert first is not None
    assert last is not None
    return shape.total / (last - first).total_seconds(), done.cpu_cores


def runs_note(rates: Sequence[float]) -> str:
    ordered = sorted(rates)
    return (
        f"best of {len(rates)} runs (" + ", ".join(f"{rate:,.0f}" for rate in rates) + "; "
        f"median {ordered[len(ordered) // 2]:,.0f})"
    )


def run_dispatch_recipients_per_s(backend: str, shape: Shape = DISPATCH) -> float:
    """``dispatch_recipients_per_s_<backend>``: zero-latency sends of one worker process
    (``dispatch_personal_…`` when each recipient has its own text)."""
    kind = "dispatch_personal" if shape.personal else "dispatch"
    name = f"{kind}_recipients_per_s_{backend}"
    runs: list[tuple[float, float]] = []
    for _ in range(RUNS):
        with scratch_database(backend) as url:
            prepare(url, shape)
            runs.append(asyncio.run(_measure_dispatch(url, shape, name)))
    rate, cores = max(runs)
    note(
        f"{name}: {shape.sessions} sessions x {shape.max_concurrency} slots, {shape.total:,} "
        f"recipients; {runs_note([r for r, _ in runs])}; worker CPU {cores:.2f} cores "
        f"while sending in the best ({1_000_000 * cores / rate:.0f} µs CPU per recipient)"
    )
    report(name, rate, "recipients/s")
    return rate


def run_personal_dispatch_cost(backend: str, plain_rate: float) -> None:
    """``dispatch_personal_cost_pct_<backend>``: how much longer dispatch takes when every
    recipient has its own text (a personal message) than with one text for all."""
    personal_rate = run_dispatch_recipients_per_s(backend, DISPATCH_PERSONAL)
    report(f"dispatch_personal_cost_pct_{backend}", (plain_rate / personal_rate - 1) * 100, "%")


@dataclass(frozen=True, slots=True)
class Fanout:
    rate: float  # first sends per second, from the first claim to the last broadcast completed
    in_flight: float  # average sends in flight over the whole run
    start_spread_s: float  # from the first session's first send to the last session's
    run_s: float  # from the first send's start to the last send's end
    repeats: int  # sends repeated with an earlier client message id (not delivered again)
    cpu_cores: float


async def _measure_fanout(url: str, shape: Shape) -> Fanout:
    engine = create_async_engine(url)
    try:
        with worker_process(url, "fanout_msgs_per_s") as worker:
            done = await wait_all_final(engine, shape, worker, timeout_s=300)
        async with engine.connect() as connection:
            sends = (
                await connection.execute(
                    select(
                        SimulatorSend.started_at, SimulatorSend.finished_at, SimulatorSend.repeat
                    )
                )
            ).all()
            session_starts: list[datetime] = list(
                (
                    await connection.execute(
                        select(func.min(SimulatorSend.started_at)).group_by(
                            SimulatorSend.session_id
                        )
                    )
                ).scalars()
            )
    finally:
        await engine.dispose()
    # A send whose worker never logged its end (its slot failed or lost its lease
    # mid-call) still reached WhatsApp: it counts as of its start.
    spans = sorted(((end or start, start, repeat) for start, end, repeat in sends))
    # Only first sends count: a repeat (a recovered send retried with the same
    # client message id) reaches nobody.
    firsts = [end for end, _, repeat in spans if not repeat]
    if len(firsts) != shape.total:
        raise RuntimeError(f"{len(firsts)} first sends for {shape.total} recipients")
    busy = sum((end - start).total_seconds() for end, start, _ in spans)
    run_s = (spans[-1][0] - min(start for _, start, _ in spans)).total_seconds()
    spread = (max(session_starts) - min(session_starts)).total_seconds()
    # The same window as the dispatch figure: the worker's first claim to its last
    # broadcast completed (results written), so start-up and tail are included.
    first, last = done.progress.first_started, done.progress.last_finished
    assert first is not None
    assert last is not None
    rate = len(firsts) / (last - first).total_seconds()
    return Fanout(rate, busy / run_s, spread, run_s, len(sends) - len(firsts), done.cpu_cores)


def run_fanout_msgs_per_s(backend: str = "postgres", shape: Shape = FANOUT) -> None:
    """``fanout_msgs_per_s``: 1,000 sessions with 100 ms latency, one worker (PostgreSQL only)."""
    if backend != "postgres":
        raise ValueError("fanout_msgs_per_s is measured on PostgreSQL only")
    runs: list[Fanout] = []
    for _ in range(RUNS):
        with scratch_database(backend) as url:
            prepare(url, shape)
            runs.append(asyncio.run(_measure_fanout(url, shape)))
    fanout = max(runs, key=lambda run: run.rate)
    ideal = shape.sessions * shape.max_concurrency * 1000 / shape.latency_ms
    note(
        f"fanout_msgs_per_s: {shape.sessions:,} sessions x {shape.recipients_per_session} "
        f"recipients, {shape.latency_ms} ms latency; {runs_note([r.rate for r in runs])}; "
        f"in the best: {fanout.rate / ideal:.1%} of the "
        f"ideal {ideal:,.0f}/s; {fanout.in_flight:.1f} sends in flight on average (ideal "
        f"{shape.sessions * shape.max_concurrency:,}); the last session began sending "
        f"{fanout.start_spread_s:.2f} s after the first; the send log spans {fanout.run_s:.2f} s "
        f"({shape.total / fanout.run_s:,.0f} msgs/s over it); "
        f"{fanout.repeats:,} repeated sends; worker CPU {fanout.cpu_cores:.2f} cores"
    )
    report("fanout_msgs_per_s", fanout.rate, "msgs/s")


async def _measure_peak_rss(url: str, run_s: float, name: str) -> tuple[float, int]:
    """The worker's peak VmRSS over ``run_s`` seconds from its start, and how many it sent."""
    engine = create_async_engine(url)
    try:
        with worker_process(url, name) as worker:
            peak = 0.0
            deadline = time.monotonic() + run_s
            while time.monotonic() < deadline:
                if worker.poll() is not None:
                    raise RuntimeError(f"worker exited with {worker.returncode}")
                peak = max(peak, rss_mb(worker.pid))
                await asyncio.sleep(RSS_SAMPLE_S)
        progress = await _progress(engine)
    finally:
        await engine.dispose()
    return peak, progress.sent


def run_worker_peak_rss_mb(
    backend: str = "postgres", shape: Shape = RSS_1M, name: str = "worker_peak_rss_mb"
) -> None:
    """``worker_peak_rss_mb``: the worker's peak RSS while sending a huge broadcast."""
    if backend != "postgres":
        raise ValueError("worker_peak_rss_mb is measured on PostgreSQL only")
    with scratch_database(backend) as url:
        prepare(url, shape)
        peak, sent = asyncio.run(_measure_peak_rss(url, RSS_RUN_S, name))
    note(f"{name}: {sent:,} of {shape.total:,} recipients sent in the {RSS_RUN_S:.0f} s sampled")
    report(name, peak, "MB")


def run_worker_peak_rss_mb_10k(backend: str = "postgres") -> None:
    """``worker_peak_rss_mb_10k``: the same for a 10,000-recipient broadcast."""
    run_worker_peak_rss_mb(backend, RSS_10K, "worker_peak_rss_mb_10k")
