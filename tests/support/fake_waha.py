"""A small fake of a WAHA server (WhatsApp HTTP API), served over real HTTP.

It speaks the documented contract (shapes from the provider-payloads notes, §2):
``X-Api-Key`` on every call, ``GET /api/sessions/{session}`` with a status,
``GET /api/contacts/check-exists`` and ``POST /api/sendText``, answering like
the NOWEB engine (the raw Baileys message, ``key.id``) unless told to answer
like GOWS (a long-form ``id``), and a 422 when the session is not WORKING. It
is a bare ASGI app, no framework, like the fake Graph API.

Use from a test::

    waha = FakeWaha(api_key="KEY")
    waha.not_on_whatsapp.add("972501234567")
    with serve_fake_waha(waha) as base_url:
        ...  # a session with base_url=base_url, api_key="KEY"
    body = ack_webhook(message_id, 3)
    client.post(url, content=body, headers=signed_headers(HMAC_KEY, body))
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote

from tests.support.serving import Receive, Scope, Send, answer, header, read_body, serve_asgi

WORKING = "WORKING"
NOWEB = "NOWEB"
GOWS = "GOWS"
ME = {"id": "972509999999@c.us", "pushName": "Fake WAHA"}

Reply = tuple[int, bytes, float]


@dataclass(frozen=True, slots=True)
class RecordedSend:
    """One ``POST /api/sendText`` as the fake received it."""

    api_key: str | None
    body: object
    # The long-form id (``true_<chatId>_<raw>``) of an accepted send, else None.
    message_id: str | None


@dataclass(frozen=True, slots=True)
class RecordedCheck:
    """One ``GET /api/contacts/check-exists``."""

    phone: str | None
    session: str | None


@dataclass
class FakeWaha:
    """The fake's state, and the ASGI app serving it.

    Tests change it from their own thread while the server runs in another;
    each change is one dict, set or deque operation, atomic under the GIL.
    """

    api_key: str = "waha-test-key"
    # WAHA session name -> its status (STOPPED, STARTING, SCAN_QR_CODE, WORKING, FAILED).
    sessions: dict[str, str] = field(default_factory=lambda: {"default": WORKING})
    # Digits of numbers check-exists answers ``numberExists: false`` for.
    not_on_whatsapp: set[str] = field(default_factory=set)
    # NOWEB answers sendText with the raw Baileys message, GOWS with ``{id, _data}``.
    engine: str = NOWEB
    sends: list[RecordedSend] = field(default_factory=list)
    checks: list[RecordedCheck] = field(default_factory=list)
    status_requests: int = 0
    _scripts: dict[str, deque[tuple[int, bytes]]] = field(default_factory=dict)
    _stalls: dict[str, float] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=itertools.count)
    _id_prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:8].upper())

    def script(self, digits: str, *answers: tuple[int, bytes]) -> None:
        """Answer the next sendTexts to ``digits`` with these (status, raw body), then succeed."""
        self._scripts.setdefault(digits, deque()).extend(answers)

    def stall(self, digits: str, seconds: float) -> None:
        """Wait this long before answering each sendText to ``digits`` (for read timeouts)."""
        self._stalls[digits] = seconds

    def sends_to(self, digits: str) -> list[RecordedSend]:
        """The recorded sendTexts addressed to ``digits@c.us``, in order."""
        chat = f"{digits}@c.us"
        return [s for s in self.sends if isinstance(s.body, dict) and s.body.get("chatId") == chat]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        api_key = header(scope, b"x-api-key")
        await answer(send, *self.handle(scope["method"], scope["path"], query, api_key, body))

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        api_key: str | None,
        body: bytes,
    ) -> Reply:
        """One call's answer: (HTTP status, body, seconds to wait before answering)."""
        if api_key != self.api_key:
            return _json(401, {"message": "Unauthorized", "statusCode": 401})
        if method == "GET" and path.startswith("/api/sessions/"):
            return self._session(unquote(path.removeprefix("/api/sessions/")))
        if method == "GET" and path == "/api/contacts/check-exists":
            return self._check_exists(_first(query, "phone"), _first(query, "session"))
        if method == "POST" and path == "/api/sendText":
            return self._send_text(api_key, body)
        return _json(404, {"statusCode": 404, "message": f"Cannot {method} {path}"})

    def _session(self, name: str) -> Reply:
        self.status_requests += 1
        status = self.sessions.get(name)
        if status is None:
            return _not_found()
        return _json(
            200,
            {
                "name": name,
                "status": status,
                "config": {"webhooks": []},
                "me": ME if status == WORKING else None,
                "engine": {"engine": self.engine},
            },
        )

    def _refusal(self, name: object) -> Reply | None:
        """404 for an unknown session, 422 for one that is not WORKING; None when it may send."""
        status = self.sessions.get(name) if isinstance(name, str) else None
        if status is None:
            return _not_found()
        if status != WORKING:
            return _json(
                422,
                {
                    "error": "Session status is not as expected. "
                    "Try again later or restart the session",
                    "session": name,
                    "status": status,
                    "expected": [WORKING],
                },
            )
        return None

    def _check_exists(self, phone: str | None, session: str | None) -> Reply:
        self.checks.append(RecordedCheck(phone, session))
        refusal = self._refusal(session)
        if refusal is not None:
            return refusal
        if not phone or not phone.isascii() or not phone.isdigit():
            return _json(400, {"statusCode": 400, "message": "phone must be digits"})
        if phone in self.not_on_whatsapp:
            return _json(200, {"numberExists": False})
        return _json(200, {"numberExists": True, "chatId": f"{phone}@c.us"})

    def _send_text(self, api_key: str | None, body: bytes) -> Reply:
        try:
            document: object = json.loads(body)
        except ValueError:
            document = None
        status, answer, message_id = self._answer_send(document)
        self.sends.append(RecordedSend(api_key, document, message_id))
        chat = document.get("chatId") if isinstance(document, dict) else None
        digits = chat.removesuffix("@c.us") if isinstance(chat, str) else ""
        return status, answer, self._stalls.get(digits, 0.0)

    def _answer_send(self, document: object) -> tuple[int, bytes, str | None]:
        if not isinstance(document, dict):
            return *_json(400, {"statusCode": 400, "message": "body must be JSON"})[:2], None
        refusal = self._refusal(document.get("session"))
        if refusal is not None:
            return refusal[0], refusal[1], None
        chat = document.get("chatId")
        text = document.get("text")
        if not isinstance(chat, str) or not chat.endswith("@c.us") or not isinstance(text, str):
            message = ["chatId must be <digits>@c.us", "text must be a string"]
            return *_json(400, {"statusCode": 400, "message": message})[:2], None
        digits = chat.removesuffix("@c.us")
        script = self._scripts.get(digits)
        if script:
            status, raw_answer = script.popleft()
            return status, raw_answer, None
        raw = f"3EB0{self._id_prefix}{next(self._ids):010d}"
        long_id = f"true_{chat}_{raw}"
        if self.engine == GOWS:
            answer: dict[str, object] = {
                "id": long_id,
                "_data": {
                    "Info": {
                        "Chat": f"{digits}@s.whatsapp.net",
                        "IsFromMe": True,
                        "IsGroup": False,
                        "ID": raw,
                    },
                    "Message": {"extendedTextMessage": {"text": text}},
                },
            }
        else:
            answer = {
                "key": {"remoteJid": f"{digits}@s.whatsapp.net", "fromMe": True, "id": raw},
                "message": {"extendedTextMessage": {"text": text}},
                "messageTimestamp": str(int(time.time())),
                "status": "PENDING",
            }
        return 201, json.dumps(answer).encode(), long_id


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _json(status: int, document: object) -> Reply:
    return status, json.dumps(document).encode(), 0.0


def _not_found() -> Reply:
    return _json(404, {"statusCode": 404, "message": "Session not found", "error": "Not Found"})


def ack_webhook(
    message_id: str,
    ack: int,
    *,
    session: str = "default",
    timestamp_ms: int | None = 1767000005123,
    payload_timestamp: int | None = None,
    event: str = "message.ack",
) -> bytes:
    """The body WAHA posts when a message's ack changes (``ack`` -1 to 4)."""
    names = {-1: "ERROR", 0: "PENDING", 1: "SERVER", 2: "DEVICE", 3: "READ", 4: "PLAYED"}
    parts = message_id.split("_", 2)
    payload: dict[str, object] = {
        "id": message_id,
        "from": parts[1] if len(parts) == 3 else "972501234567@c.us",
        "fromMe": True,
        "ack": ack,
        "ackName": names.get(ack, "UNKNOWN"),
    }
    if payload_timestamp is not None:
        payload["timestamp"] = payload_timestamp
    document: dict[str, object] = {
        "id": "evt_" + uuid.uuid4().hex[:26],
        "event": event,
        "session": session,
        "metadata": {},
        "me": ME,
        "engine": NOWEB,
        "environment": {"version": "2026.1.1", "engine": NOWEB, "tier": "CORE"},
        "payload": payload,
    }
    if timestamp_ms is not None:
        document["timestamp"] = timestamp_ms
    return json.dumps(document, separators=(",", ":")).encode()


def signed_headers(hmac_key: str, body: bytes) -> dict[str, str]:
    """The headers WAHA sends with ``body`` when its webhook has ``hmac.key`` set."""
    digest = hmac.new(hmac_key.encode(), body, hashlib.sha512).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Webhook-Hmac": digest,
        "X-Webhook-Hmac-Algorithm": "sha512",
    }


@contextmanager
def serve_fake_waha(
    waha: FakeWaha, *, host: str = "127.0.0.1", port: int = 0, start_timeout: float = 10.0
) -> Iterator[str]:
    """Serve ``waha`` with uvicorn in a background thread; yields its base URL.

    ``port=0`` takes a free port. On exit the server is asked to stop and the
    thread is joined, so no socket outlives the block.
    """
    with serve_asgi(
        waha, "the fake WAHA", host=host, port=port, start_timeout=start_timeout
    ) as url:
        yield url
