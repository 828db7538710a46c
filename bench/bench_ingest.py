"""ingest_recipients_per_s: a 100,000-recipient broadcast posted through the real API.

Measured from the client's side of a real ``wabroadcast serve`` process: the
whole POST (JSON parsing, phone normalization, dedupe, idempotency key, the
connection check and the inserts) until the 202 with its proof arrives. The
server's RSS after several such broadcasts shows whether memory grows with them.
``ingest_personal_recipients_per_s`` posts a personal message (``Hello {{name}}``) to
recipient objects with a name each: every recipient's text is rendered and stored.
"""

from __future__ import annotations

import json
import random
import time

import httpx

from bench.support import report, rss_mb, running_server, scratch_database, wabroadcast
from wabroadcast.domain.phones import InvalidPhone, normalize_phone

RECIPIENTS = 100_000
ROUNDS = 10
# Rounds of a personal message ({{name}}): recipient objects with a name each.
PERSONAL_ROUNDS = 5


def _recipients(seed: int) -> list[str]:
    """A CRM-like list: valid Israeli mobiles in mixed spellings, ~1% junk, ~1% repeats."""
    rng = random.Random(seed)
    spellings = ("0{n}", "+972{n}", "00972{n}", "972-{n}", "0{a}-{b}")
    numbers: list[str] = []
    seen: set[str] = set()
    while len(numbers) < RECIPIENTS * 0.98:
        national = f"5{rng.choice('0234568')}{rng.randrange(10**7):07d}"
        if national in seen or isinstance(normalize_phone("0" + national, "IL"), InvalidPhone):
            continue
        seen.add(national)
        spelling = rng.choice(spellings)
        numbers.append(spelling.format(n=national, a=national[:2], b=national[2:]))
    junk = [f"{rng.randrange(10**6)}" for _ in range(RECIPIENTS // 100)]
    repeats = [f"+972 {n[-9:]}" for n in rng.sample(numbers, RECIPIENTS - len(numbers) - len(junk))]
    mixed = numbers + junk + repeats
    rng.shuffle(mixed)
    return mixed


def run(backend: str) -> None:
    with scratch_database(backend) as url:
        env = {"WABROADCAST_DATABASE_URL": url}
        wabroadcast("db", "upgrade", env=env)
        tenant = json.loads(wabroadcast("tenant", "create", "--name", "Bench", env=env))
        with running_server(url, "--no-worker") as (base_url, pid):
            headers = {
                "Authorization": f"Bearer {tenant['api_key']}",
                "Content-Type": "application/json",
            }
            rates = []
            rss = []
            personal = []
            with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
                for round_no in range(ROUNDS):
                    body = json.dumps(
                        {"message": f"Bench round {round_no}", "recipients": _recipients(round_no)}
                    ).encode()
                    rates.append(_post_round(client, body))
                    rss.append(rss_mb(pid))
                for round_no in range(PERSONAL_ROUNDS):
                    personal.append(_post_round(client, _personal_body(round_no)))
        # The first round warms caches and the allocator; report the median of the rest.
        report(f"ingest_recipients_per_s_{backend}", _steady(rates), "recipients/s")
        report(f"ingest_server_rss_after_2_broadcasts_mb_{backend}", rss[1], "MB")
        report(f"ingest_server_rss_after_{ROUNDS}_broadcasts_mb_{backend}", rss[-1], "MB")
        report(f"ingest_personal_recipients_per_s_{backend}", _steady(personal), "recipients/s")


def _steady(rates: list[float]) -> float:
    """The median of every round but the first."""
    steady = sorted(rates[1:])
    return steady[len(steady) // 2]


def _personal_body(round_no: int) -> bytes:
    """A ``Hello {{name}}`` message to recipient objects, each with its own name."""
    recipients = [
        {"phone": phone, "name": f"Customer {n}"}
        for n, phone in enumerate(_recipients(1000 + round_no))
    ]
    message = f"Hello {{{{name}}}}, round {round_no}: your order is ready for pickup."
    return json.dumps({"message": message, "recipients": recipients}).encode()


def _post_round(client: httpx.Client, body: bytes) -> float:
    """Recipients per second of one POST, checked to have queued them."""
    started = time.perf_counter()
    response = client.post("/api/whatsapp/broadcasts", content=body)
    elapsed = time.perf_counter() - started
    if response.status_code != 202:
        raise RuntimeError(f"{response.status_code}: {response.text[:500]}")
    if response.json()["queued_count"] < RECIPIENTS * 0.97:
        raise RuntimeError("fewer recipients queued than expected")
    return RECIPIENTS / elapsed
