"""A small fake of Meta's Graph API for the Cloud API provider, served over real HTTP.

It speaks the documented contract (shapes from the provider-payloads notes, §1):
the phone number lookup, the messages endpoint with its validation, and Meta's
error envelope, so the adapter is tested through a real socket, a real HTTP
client and real JSON rather than a mocked transport. It is a bare ASGI app, no
framework, because benchmarks push thousands of sends a second through it.

Use from a test::

    graph = FakeGraph()
    graph.add_number("100000000000001", "TOKEN")
    graph.script_errors("972501234567", [130429])   # first send: throughput error
    with serve_fake_graph(graph) as base_url:
        ...  # a session with graph_base_url=base_url

Or in a process of its own (prints its base URL once it listens)::

    python -m tests.support.fake_graph --port 8099 --number 100000000000001:TOKEN --no-record
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import itertools
import json
import re
import signal
import sys
import threading
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.support.serving import Receive, Scope, Send, answer, header, read_body, serve_asgi

# ASGI's types, as far as this app uses them.

DEFAULT_WABA_ID = "200000000000002"
DEFAULT_DISPLAY_NUMBER = "15550001111"
VERSION = re.compile(r"v[0-9]{1,3}\.[0-9]{1,2}")
MAX_TEXT_BODY = 4096

# Graph error code -> (HTTP status, title, details), as the fake answers it.
GRAPH_ERRORS: dict[int, tuple[int, str, str]] = {
    100: (400, "Invalid parameter", "The request has an invalid or missing parameter."),
    190: (
        401,
        "Error validating access token",
        "Invalid OAuth access token - Cannot parse access token",
    ),
    368: (400, "Temporarily blocked for policies violations", "The account is blocked."),
    803: (404, "Some of the aliases you requested do not exist", "Unknown phone number id."),
    80007: (400, "Rate limit issues", "The WhatsApp Business account reached its rate limit."),
    130429: (400, "Rate limit hit", "Cloud API message throughput has been reached."),
    131000: (500, "Something went wrong", "Message failed to send because of an unknown error."),
    131016: (503, "Service unavailable", "A service is temporarily unavailable."),
    131026: (400, "Message undeliverable", "Message Undeliverable."),
    131031: (400, "Account has been locked", "The business account is locked."),
    131047: (400, "Re-engagement message", "More than 24 hours have passed since the reply."),
    131048: (400, "Spam rate limit hit", "Message failed to send because of spam limits."),
    131049: (400, "Meta chose not to deliver", "Not delivered to maintain healthy engagement."),
    131050: (400, "User has stopped marketing messages", "The user stopped marketing."),
    131051: (400, "Unsupported message type", "Unsupported message type."),
    131056: (400, "Pair rate limit hit", "Too many messages to this phone number."),
    132000: (400, "Template Param Count Mismatch", "The parameter count does not match."),
    132001: (400, "Template does not exist", "The template does not exist."),
    133004: (503, "Server temporarily unavailable", "The server is temporarily unavailable."),
}
UNKNOWN_ERROR = (400, "Unknown error", "An unknown error occurred.")

# A scripted answer: a Graph error code, or (HTTP status, raw body) answered as is.
Answer = int | tuple[int, bytes]


@dataclass(frozen=True, slots=True)
class RecordedSend:
    """One POST to a messages endpoint as the fake received it."""

    path: str
    authorization: str | None
    body: object
    # The wamid answered, or None if the send was refused.
    message_id: str | None


@dataclass
class FakeGraph:
    """The fake's state, and the ASGI app serving it (``uvicorn.Config(graph, ...)``).

    Tests change it from their own thread while the server runs in another;
    each change is one dict or deque operation, atomic under the GIL.
    """

    record: bool = True
    # phone number id -> the access token that may use it.
    numbers: dict[str, str] = field(default_factory=dict)
    requests: list[RecordedSend] = field(default_factory=list)
    # POSTs to a messages endpoint, answered or refused (counted with record off too).
    sends_received: int = 0
    sends_accepted: int = 0
    expired_tokens: set[str] = field(default_factory=set)
    _scripts: dict[str, deque[Answer]] = field(default_factory=dict)
    _always: dict[str, int] = field(default_factory=dict)
    _stalls: dict[str, float] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=itertools.count)
    _id_prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:8].upper())

    def add_number(self, phone_number_id: str, token: str) -> None:
        """Let ``token`` read and send as ``phone_number_id``."""
        self.numbers[phone_number_id] = token

    def expire_token(self, token: str) -> None:
        """Answer every call with ``token`` 401, code 190, subcode 463 (session expired)."""
        self.expired_tokens.add(token)

    def script_errors(self, to_digits: str, codes: Iterable[Answer]) -> None:
        """Answer the next sends to ``to_digits`` with these, one per send, then succeed.

        An int is a Graph error code (its HTTP status from ``GRAPH_ERRORS``); a
        ``(status, body)`` pair is answered as is, e.g. ``(502, b"<html>")`` or
        ``(200, b"{}")`` for a success without a message id.
        """
        self._scripts.setdefault(to_digits, deque()).extend(codes)

    def fail_always(self, to_digits: str, code: int) -> None:
        """Answer every send to ``to_digits`` with this Graph error code."""
        self._always[to_digits] = code

    def stall(self, to_digits: str, seconds: float) -> None:
        """Wait this long before answering each send to ``to_digits`` (for read timeouts)."""
        self._stalls[to_digits] = seconds

    def sends_to(self, to_digits: str) -> list[RecordedSend]:
        """The recorded sends addressed to ``to_digits``, in order."""
        return [
            send
            for send in self.requests
            if isinstance(send.body, dict) and send.body.get("to") == to_digits
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        authorization = header(scope, b"authorization")
        await answer(send, *self.handle(scope["method"], scope["path"], authorization, body))

    def handle(
        self, method: str, path: str, authorization: str | None, body: bytes
    ) -> tuple[int, bytes, float]:
        """One call's answer: (HTTP status, body, seconds to wait before answering)."""
        parts = path.split("/")
        if len(parts) < 3 or parts[0] or not VERSION.fullmatch(parts[1]):
            return _error(404, 2500, "Unknown path components", "Unknown path components.")
        phone_number_id = parts[2]
        rest = parts[3:]
        if method == "GET" and not rest:
            return self._lookup(phone_number_id, authorization)
        if method == "POST" and rest == ["messages"]:
            return self._send(path, phone_number_id, authorization, body)
        return _error(400, 100, "Unsupported request", "Unsupported request - method type.")

    def _refusal(
        self, phone_number_id: str, authorization: str | None, *, for_send: bool
    ) -> tuple[int, bytes, float] | None:
        """The answer to a caller who may not use this number, or None if they may."""
        token = authorization.removeprefix("Bearer ") if authorization else None
        if token is not None and token in self.expired_tokens:
            return _error(
                401,
                190,
                "Error validating access token",
                "Error validating access token: Session has expired.",
                subcode=463,
            )
        if token is not None and self.numbers.get(phone_number_id) == token:
            return None
        if token is None or token not in self.numbers.values():
            return _error(401, 190, *GRAPH_ERRORS[190][1:])
        if for_send:
            return _error(400, 100, "Invalid parameter", "Object does not exist.", subcode=33)
        return _error(404, 803, *GRAPH_ERRORS[803][1:], kind="GraphMethodException")

    def _lookup(self, phone_number_id: str, authorization: str | None) -> tuple[int, bytes, float]:
        refusal = self._refusal(phone_number_id, authorization, for_send=False)
        if refusal is not None:
            return refusal
        answer = {
            "id": phone_number_id,
            "display_phone_number": "+1 555-000-1111",
            "verified_name": "Fake Graph Business",
            "quality_rating": "GREEN",
        }
        return 200, json.dumps(answer).encode(), 0.0

    def _send(
        self, path: str, phone_number_id: str, authorization: str | None, body: bytes
    ) -> tuple[int, bytes, float]:
        self.sends_received += 1
        try:
            document: object = json.loads(body)
        except ValueError:
            document = None
        status, answer, message_id = self._answer_send(phone_number_id, authorization, document)
        if self.record:
            self.requests.append(RecordedSend(path, authorization, document, message_id))
        to = document.get("to") if isinstance(document, dict) else None
        delay = self._stalls.get(to, 0.0) if isinstance(to, str) else 0.0
        return status, answer, delay

    def _answer_send(
        self, phone_number_id: str, authorization: str | None, document: object
    ) -> tuple[int, bytes, str | None]:
        refusal = self._refusal(phone_number_id, authorization, for_send=True)
        if refusal is not None:
            return refusal[0], refusal[1], None
        problem = _invalid_message(document)
        if problem is not None or not isinstance(document, dict):
            status, answer, _ = _error(400, 100, "Invalid parameter", problem or "Bad body.")
            return status, answer, None
        to = document["to"]
        script = self._scripts.get(to)
        scripted: Answer | None = script.popleft() if script else self._always.get(to)
        if isinstance(scripted, tuple):
            return scripted[0], scripted[1], None
        if scripted is not None:
            status, title, details = GRAPH_ERRORS.get(scripted, UNKNOWN_ERROR)
            status, answer, _ = _error(status, scripted, title, details)
            return status, answer, None
        message_id = f"wamid.FAKE{self._id_prefix}{next(self._ids):010d}"
        self.sends_accepted += 1
        accepted = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": message_id}],
        }
        return 200, json.dumps(accepted).encode(), message_id


def _invalid_message(document: object) -> str | None:
    """What is wrong with a messages body, as Meta's (#100) details would say; None if valid."""
    if not isinstance(document, dict):
        return "The request body is not a JSON object."
    if document.get("messaging_product") != "whatsapp":
        return "The parameter messaging_product is required."
    if document.get("recipient_type", "individual") != "individual":
        return "The parameter recipient_type must be individual."
    to = document.get("to")
    if not isinstance(to, str) or not to.isascii() or not to.isdigit() or len(to) > 20:
        return "The parameter to must be a phone number in digits."
    kind = document.get("type")
    if kind == "text":
        text = document.get("text")
        message = text.get("body") if isinstance(text, dict) else None
        if not isinstance(message, str) or not 0 < len(message) <= MAX_TEXT_BODY:
            return "The parameter text['body'] is required."
        return None
    if kind == "template":
        template = document.get("template")
        if not isinstance(template, dict) or not isinstance(template.get("name"), str):
            return "The parameter template['name'] is required."
        language = template.get("language")
        if not isinstance(language, dict) or not isinstance(language.get("code"), str):
            return "The parameter template['language']['code'] is required."
        components = template.get("components")
        if components is not None and not isinstance(components, list):
            return "The parameter template['components'] must be an array."
        return None
    return "The parameter type must be text or template."


def _error(
    status: int,
    code: int,
    title: str,
    details: str,
    *,
    subcode: int | None = None,
    kind: str = "OAuthException",
) -> tuple[int, bytes, float]:
    """An answer in the Graph API's error envelope."""
    # Token errors carry their details as the message, and no ``error_data``.
    message = details if code == 190 else f"(#{code}) {title}"
    error: dict[str, object] = {"message": message, "type": kind, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if code != 190:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    error["fbtrace_id"] = "AFake" + uuid.uuid4().hex[:12]
    return status, json.dumps({"error": error}).encode(), 0.0


def status_entry(
    message_id: str,
    status: str,
    *,
    timestamp: int | str,
    recipient_id: str = "972501234567",
    errors: list[dict[str, object]] | None = None,
) -> dict[str, object]:
    """One element of a status webhook's ``statuses`` list."""
    entry: dict[str, object] = {
        "id": message_id,
        "status": status,
        "timestamp": str(timestamp),
        "recipient_id": recipient_id,
    }
    if errors is not None:
        entry["errors"] = errors
    return entry


def status_webhook(
    phone_number_id: str,
    statuses: list[dict[str, object]],
    *,
    waba_id: str = DEFAULT_WABA_ID,
    display_phone_number: str = DEFAULT_DISPLAY_NUMBER,
) -> bytes:
    """The body Meta posts to report ``statuses`` of messages sent from ``phone_number_id``."""
    document = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": waba_id,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": display_phone_number,
                                "phone_number_id": phone_number_id,
                            },
                            "statuses": statuses,
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(document, separators=(",", ":")).encode()


def signed_headers(app_secret: str, body: bytes) -> dict[str, str]:
    """The headers Meta sends with ``body``: JSON, signed with the app secret."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}


@contextmanager
def serve_fake_graph(
    graph: FakeGraph, *, host: str = "127.0.0.1", port: int = 0, start_timeout: float = 10.0
) -> Iterator[str]:
    """Serve ``graph`` with uvicorn in a background thread; yields its base URL.

    ``port=0`` takes a free port. On exit the server is asked to stop and the
    thread is joined, so no socket outlives the block.
    """
    with serve_asgi(
        graph, "the fake Graph API", host=host, port=port, start_timeout=start_timeout
    ) as url:
        yield url


def main(argv: list[str] | None = None) -> None:
    """Run the fake in this process until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 takes a free port")
    parser.add_argument(
        "--number",
        action="append",
        default=[],
        metavar="ID:TOKEN",
        help="a phone number id and the token that may use it (repeatable)",
    )
    parser.add_argument("--no-record", action="store_true", help="count sends, keep none")
    args = parser.parse_args(argv)
    graph = FakeGraph(record=not args.no_record)
    for number in args.number:
        phone_number_id, separator, token = number.partition(":")
        if not separator or not phone_number_id or not token:
            parser.error(f"--number must be ID:TOKEN, got {number!r}")
        graph.add_number(phone_number_id, token)
    stop = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop.set())
    with serve_fake_graph(graph, host=args.host, port=args.port) as base_url:
        sys.stdout.write(f"{base_url}\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    sys.stdout.write(f"sends received {graph.sends_received}, accepted {graph.sends_accepted}\n")


if __name__ == "__main__":
    main()
