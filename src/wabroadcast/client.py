"""A small client of the wabroadcast API for the CLI and the demo: post, then follow.

It talks HTTP like any CRM would, so ``wabroadcast send`` works against any
server, and the demo shows the product exactly as a client sees it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from wabroadcast.domain.csv_import import import_csv

FINAL_STATUSES = {"completed", "partial", "failed", "cancelled"}
# Where following a broadcast stops: it ended, or it waits for someone to act.
STOP_STATUSES = FINAL_STATUSES | {"paused"}


class ApiError(Exception):
    """An error envelope from the server, or no answer at all."""


def read_csv_recipients(path: Path, region: str = "IL") -> list[dict[str, Any]]:
    """The API's recipient objects from a CSV file, read by ``domain.csv_import`` like the
    dashboard's upload; ``region`` only helps find a phone column whose header is unknown.

    Raises ``CsvNotText`` or ``NoPhoneColumn`` (``ValidationFailed``) for a file it cannot
    use. The file's other columns become each recipient's ``variables``.
    """
    return [row.recipient() for row in import_csv(path.read_bytes(), region).rows]


def _raise_for_envelope(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        message = body.get("message_en") or body.get("message")
        raise ApiError(f"{response.status_code} {body.get('error_code')}: {message}")
    except ValueError:
        raise ApiError(f"{response.status_code}: {response.text[:300]}") from None


async def post_broadcast(
    client: httpx.AsyncClient, body: dict[str, Any], idempotency_key: str | None = None
) -> dict[str, Any]:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    try:
        response = await client.post("/api/whatsapp/broadcasts", json=body, headers=headers)
    except httpx.TransportError as exc:
        raise ApiError(f"cannot reach the server: {exc!r}") from exc
    _raise_for_envelope(response)
    proof: dict[str, Any] = response.json()
    return proof


async def follow(
    client: httpx.AsyncClient, console: Console, broadcast_id: int, poll_s: float = 0.5
) -> dict[str, Any]:
    """A live progress bar (sent, delivered, failed) until the broadcast finishes or is
    paused (an account-level error: nothing more is sent until it is resumed)."""
    columns = (
        TextColumn("{task.description:>9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        state = await _get(client, broadcast_id)
        total = max(1, int(state["total_recipients"]))
        sent = progress.add_task("sent", total=total)
        delivered = progress.add_task("delivered", total=total)
        failed = progress.add_task("failed", total=total)
        shown_line: str | None = None
        while True:
            progress.update(sent, completed=state["sent_count"])
            progress.update(delivered, completed=state["delivered_count"])
            progress.update(failed, completed=state["failed_count"])
            if state["status"] in STOP_STATUSES:
                return state
            line = waiting_line(state)
            if line and line != shown_line:
                progress.console.print(line, highlight=False)
                shown_line = line
            await asyncio.sleep(poll_s)
            state = await _get(client, broadcast_id)


# How ``waiting_line`` says each ``waiting_reason`` of the API.
WAITING_REASONS = {
    "scheduled": "scheduled",
    "behind_broadcast": "behind broadcast",
    "paused": "paused",
    "not_connected": "the WhatsApp session is not connected",
    "pace": "the session's sending pace",
}


def waiting_line(state: dict[str, Any], now: datetime | None = None) -> str | None:
    """``waiting: behind broadcast 12 · estimated finish 14:05 UTC``: why an active
    broadcast is not sending and when it should be done; None when it says neither."""
    reason, finish = state.get("waiting_reason"), state.get("estimated_finish_at")
    if not reason and not finish:
        return None
    now = now or datetime.now(UTC)
    if reason:
        said = WAITING_REASONS.get(reason, reason)
        if reason == "behind_broadcast" and state.get("waiting_for_broadcast_id"):
            said += f" {state['waiting_for_broadcast_id']}"
        if reason == "scheduled" and state.get("send_at"):
            said += f" for {_clock_time(state['send_at'], now)}"
        parts = [f"waiting: {said}"]
    else:
        parts = ["sending"]
    if finish:
        parts.append(f"estimated finish {_clock_time(finish, now)}")
    return " · ".join(parts)


def _clock_time(value: str, now: datetime) -> str:
    """``14:05 UTC`` today, ``2026-12-07 14:05 UTC`` on another day."""
    at = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    return at.strftime(
        "%H:%M UTC" if at.date() == now.astimezone(UTC).date() else "%Y-%m-%d %H:%M UTC"
    )


async def call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    json: object = None,
    params: dict[str, Any] | None = None,
) -> Any:
    """One API call and its decoded answer; ``ApiError`` with the server's error envelope."""
    response = await client.request(method, path, json=json, params=params)
    _raise_for_envelope(response)
    return response.json()


async def _get(client: httpx.AsyncClient, broadcast_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/whatsapp/broadcasts/{broadcast_id}")
    _raise_for_envelope(response)
    state: dict[str, Any] = response.json()
    return state


async def print_summary(client: httpx.AsyncClient, console: Console, state: dict[str, Any]) -> None:
    """Per-status counts and, for failures, each reason with how many it hit."""
    table = Table(title=f"Broadcast {state['broadcast_id']}: {state['status']}")
    table.add_column("recipients")
    table.add_column("count", justify="right")
    for label, key in (
        ("total", "total_recipients"),
        ("sent", "sent_count"),
        ("delivered", "delivered_count"),
        ("read", "read_count"),
        ("failed", "failed_count"),
        ("still queued", "queued_count"),
        ("cancelled", "cancelled_count"),
        ("skipped (opted out)", "skipped_count"),
        ("invalid (not stored)", "invalid_recipients_count"),
    ):
        table.add_row(label, str(state[key]))
    console.print(table)
    if state["status"] == "paused":
        console.print(
            f"[yellow]Paused: {state['status_reason']}[/] Nothing more is sent until it is "
            f"resumed (wabroadcast broadcasts resume {state['broadcast_id']}, "
            f"POST /api/whatsapp/broadcasts/{state['broadcast_id']}/resume, or the "
            "dashboard's Resume sending), after an account-level error once the account is "
            "fine again."
        )
    if not state["failed_count"]:
        return
    response = await client.get(
        f"/api/whatsapp/broadcasts/{state['broadcast_id']}/recipients",
        params={"status": "failed", "limit": 500},
    )
    _raise_for_envelope(response)
    reasons = Counter(
        (item["error_code"], item["error_message"]) for item in response.json()["items"]
    )
    failures = Table(title="Failure reasons")
    failures.add_column("error_code")
    failures.add_column("reason")
    failures.add_column("recipients", justify="right")
    for (code, message), count in reasons.most_common():
        failures.add_row(str(code), str(message), str(count))
    console.print(failures)
