"""``wabroadcast broadcasts ...``: list, show and control broadcasts through the API.

Like ``send``, these talk HTTP to a running server (``--url``, ``--api-key`` or
``WABROADCAST_URL``/``WABROADCAST_API_KEY``), so they work against any installation.
Each prints a short human summary, or the API's JSON with ``--json``; a failure is one
line on stderr (``error: ...``) and exit code 1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import httpx
import typer

from wabroadcast import client as api
from wabroadcast.cli_errors import one_line
from wabroadcast.domain.templating import message_preview

broadcasts_app = typer.Typer(help="List, show, pause, resume, cancel and retry broadcasts.")

URL_HELP = "The wabroadcast server."
Url = Annotated[str, typer.Option(envvar="WABROADCAST_URL", help=URL_HELP)]
ApiKey = Annotated[
    str | None, typer.Option(envvar="WABROADCAST_API_KEY", help="The tenant's API key.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]
BroadcastIdArg = Annotated[int, typer.Argument(help="The broadcast's id.", min=1)]
DEFAULT_URL = "http://127.0.0.1:8000"
BASE = "/api/whatsapp/broadcasts"
# How many recipients and invalid inputs a compact proof shows.
FIRST_ITEMS = 5
# Exit codes of ``send --wait``: paused (someone must act), partial or failed.
EXIT_PAUSED = 2
EXIT_NOT_ALL_SENT = 3


def run_api(
    url: str, api_key: str | None, work: Callable[[httpx.AsyncClient], Awaitable[int]]
) -> None:
    """Run ``work`` with a client of the server; API and connection errors are one line on
    stderr and exit code 1."""
    if not api_key:
        raise typer.BadParameter(
            "give --api-key or set WABROADCAST_API_KEY", param_hint="--api-key"
        )

    async def run() -> int:
        headers = {"Authorization": f"Bearer {api_key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            try:
                return await work(http)
            except api.ApiError as exc:
                typer.echo(f"error: {one_line(str(exc))}", err=True)
            except httpx.HTTPError as exc:
                reason = one_line(str(exc)) or type(exc).__name__
                typer.echo(f"error: no answer from the server at {url}: {reason}", err=True)
        return 1

    raise typer.Exit(asyncio.run(run()))


def echo_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def counts_line(b: dict[str, Any]) -> str:
    """``sent 2, delivered 1, read 0, failed 1, queued 0, cancelled 0 of 3``."""
    return (
        f"sent {b['sent_count']}, delivered {b['delivered_count']}, read {b['read_count']}, "
        f"failed {b['failed_count']}, queued {b['queued_count']}, "
        f"cancelled {b['cancelled_count']} of {b['total_recipients']}"
    )


def state_line(b: dict[str, Any]) -> str:
    """``broadcast 7: partial (sent 2, ...)``, with the reason of a pause."""
    line = f"broadcast {b['broadcast_id']}: {b['status']} ({counts_line(b)})"
    if b.get("status_reason"):
        line += f"; {b['status_reason']}"
    return line


def proof_lines(proof: dict[str, Any], message: str) -> list[str]:
    """A broadcast's proof in a few lines: what was queued, the first items (with their own
    text when ``message`` is personal), what was not."""
    lines = [
        f"broadcast {proof['broadcast_id']} {proof['status']} on {proof['session_id']}: "
        f"{proof['queued_count']} queued, {proof['invalid_recipients_count']} invalid, "
        f"{proof['duplicates_removed']} duplicates removed"
        + (" (an identical broadcast already existed)" if proof.get("idempotent") else "")
    ]
    items: list[dict[str, Any]] = proof.get("items") or []
    as_sent = message_preview(message)
    for item in items[:FIRST_ITEMS]:
        lead = f" lead {item['lead_id']}" if item.get("lead_id") is not None else ""
        own = item.get("message_preview", as_sent)
        text = f" {own!r}" if own != as_sent else ""
        lines.append(f"  {item['phone']}{lead}: {item['status']}{text}")
    if len(items) > FIRST_ITEMS:
        lines.append(f"  … and {len(items) - FIRST_ITEMS} more")
    invalid: list[dict[str, Any]] = (proof.get("invalid_recipients") or [])[:FIRST_ITEMS]
    for bad in invalid:
        lines.append(f"  invalid: {bad['input']!r} ({bad['reason']})")
    if proof["invalid_recipients_count"] > len(invalid):
        lines.append(f"  … and {proof['invalid_recipients_count'] - len(invalid)} more invalid")
    for missing in proof.get("missing_variables") or []:
        phones = list(missing["phones"]) + (
            ["…"] if missing["count"] > len(missing["phones"]) else []
        )
        lines.append(
            f"  missing {missing['variable']}: {missing['count']} "
            f"{'recipient gets' if missing['count'] == 1 else 'recipients get'} it empty "
            f"({', '.join(phones)})"
        )
    return lines


def exit_code_of(status: str) -> int:
    """``send --wait``'s exit code for where the broadcast stopped."""
    if status == "paused":
        return EXIT_PAUSED
    if status in ("partial", "failed"):
        return EXIT_NOT_ALL_SENT
    return 0


async def wait_quietly(
    http: httpx.AsyncClient, broadcast_id: int, poll_s: float = 0.5
) -> dict[str, Any]:
    """The broadcast once it finished or paused, without a progress bar (``--json``)."""
    while True:
        state: dict[str, Any] = await api.call(http, "GET", f"{BASE}/{broadcast_id}")
        if state["status"] in api.STOP_STATUSES:
            return state
        await asyncio.sleep(poll_s)


@broadcasts_app.command("list")
def list_broadcasts(
    status: Annotated[
        str | None, typer.Option(help="Only this status (queued, running, paused, ...).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 20,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """The tenant's broadcasts, newest first: id, status and counts."""

    async def work(http: httpx.AsyncClient) -> int:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        page: dict[str, Any] = await api.call(http, "GET", BASE, params=params)
        if as_json:
            echo_json(page)
            return 0
        if not page["items"]:
            typer.echo("no broadcasts")
        for b in page["items"]:
            typer.echo(f"{b['created_at'][:19]}  {state_line(b)}")
        if page.get("next_cursor"):
            typer.echo(f"… more: --limit {min(500, limit * 2)}, or the API's cursor")
        return 0

    run_api(url, api_key, work)


@broadcasts_app.command("show")
def show(
    broadcast_id: BroadcastIdArg,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """A broadcast's status, counts, what it waits for, its estimated finish and failure
    reasons."""
    from rich.console import Console

    async def work(http: httpx.AsyncClient) -> int:
        state: dict[str, Any] = await api.call(http, "GET", f"{BASE}/{broadcast_id}")
        if as_json:
            echo_json(state)
            return 0
        typer.echo(state_line(state))
        waiting = api.waiting_line(state)
        if waiting:
            typer.echo(waiting)
        await api.print_summary(http, Console(), state)
        return 0

    run_api(url, api_key, work)


def _control(action: str, broadcast_id: int, as_json: bool, url: str, key: str | None) -> None:
    async def work(http: httpx.AsyncClient) -> int:
        state: dict[str, Any] = await api.call(http, "POST", f"{BASE}/{broadcast_id}/{action}")
        if as_json:
            echo_json(state)
        else:
            typer.echo(state_line(state))
        return 0

    run_api(url, key, work)


@broadcasts_app.command("pause")
def pause(
    broadcast_id: BroadcastIdArg,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Pause: nothing new starts, sends already with WhatsApp finish (resume sends the rest)."""
    _control("pause", broadcast_id, as_json, url, api_key)


@broadcasts_app.command("resume")
def resume(
    broadcast_id: BroadcastIdArg,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Resume a paused broadcast: its held recipients are sent."""
    _control("resume", broadcast_id, as_json, url, api_key)


@broadcasts_app.command("cancel")
def cancel(
    broadcast_id: BroadcastIdArg,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Cancel: queued recipients are not sent, sends in flight finish."""
    _control("cancel", broadcast_id, as_json, url, api_key)


@broadcasts_app.command("retry-failed")
def retry_failed(
    broadcast_id: BroadcastIdArg,
    code: Annotated[
        list[str] | None,
        typer.Option(
            "--code", help="Only recipients that failed with this error code; repeat for more."
        ),
    ] = None,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Send failed recipients again whose failure may pass (not NOT_ON_WHATSAPP, invalid, ...;
    UNKNOWN_OUTCOME only with --code UNKNOWN_OUTCOME)."""

    async def work(http: httpx.AsyncClient) -> int:
        body = {"error_codes": code} if code else {}
        path = f"{BASE}/{broadcast_id}/retry-failed"
        answer: dict[str, Any] = await api.call(http, "POST", path, json=body)
        if as_json:
            echo_json(answer)
        else:
            typer.echo(
                f"broadcast {broadcast_id}: {answer['requeued']} failed recipients queued again"
            )
        return 0

    run_api(url, api_key, work)
