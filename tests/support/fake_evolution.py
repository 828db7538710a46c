"""A small fake of an Evolution API v2 server for the Evolution provider, over real HTTP.

It speaks the documented contract (shapes from the provider-payloads notes, §3):
the ``apikey`` header (the global key or the instance's token), instances with a
connection state, ``sendText`` with Evolution's WhatsApp pre-check (a 400 that
lists ``"exists": false``), the number check ``chat/whatsappNumbers`` (``[{jid,
exists, number}]``), ``webhook/set`` in v2's nested shape, and Evolution's
error envelope ``{"status", "error", "response": {"message"}}``. It is a bare
ASGI app served by uvicorn in a thread, so the provider is tested through a real
socket, a real HTTP client and real JSON.

Use from a test::

    evolution = FakeEvolution(api_key="GLOBAL-KEY")
    evolution.add_instance("shop1")                 # state "open"
    evolution.mark_not_on_whatsapp("972501234567")
    with serve_fake_evolution(evolution) as base_url:
        ...  # a session with base_url=base_url, api_key="GLOBAL-KEY", instance="shop1"
        path, headers = evolution.webhook_call("shop1")  # where Evolution would post, and how
        body = messages_update_body("3EB0...", "DELIVERY_ACK", instance="shop1")
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from tests.support.serving import Receive, Scope, Send, answer, header, read_body, serve_asgi

# ASGI's types, as far as this app uses them.

# The header wabroadcast registers with Evolution (the contract; spelled out here, not
# imported, so a change on either side shows).
SECRET_HEADER = "X-Wabroadcast-Webhook-Secret"
# Event names ``webhook/set`` accepts (a subset of Evolution's enum; enough for the fake).
KNOWN_EVENTS = frozenset(
    {
        "APPLICATION_STARTUP",
        "QRCODE_UPDATED",
        "MESSAGES_SET",
        "MESSAGES_UPSERT",
        "MESSAGES_EDITED",
        "MESSAGES_UPDATE",
        "MESSAGES_DELETE",
        "SEND_MESSAGE",
        "CONTACTS_UPSERT",
        "CONTACTS_UPDATE",
        "PRESENCE_UPDATE",
        "CHATS_UPSERT",
        "CHATS_UPDATE",
        "CONNECTION_UPDATE",
        "CALL",
        "LOGOUT_INSTANCE",
        "STATUS_INSTANCE",
    }
)
# A scripted answer to a send: (HTTP status, raw body), answered as is.
Answer = tuple[int, bytes]


@dataclass(frozen=True, slots=True)
class RecordedSend:
    """One POST to ``/message/sendText/{instance}`` as the fake received it."""

    instance: str
    apikey: str | None
    body: object
    status: int
    # ``key.id`` answered, or None if the send was refused.
    message_id: str | None


@dataclass(frozen=True, slots=True)
class RecordedWebhookSet:
    """One POST to ``/webhook/set/{instance}`` as the fake received it."""

    instance: str
    apikey: str | None
    body: object
    status: int


@dataclass
class FakeInstance:
    name: str
    state: str = "open"
    token: str = field(default_factory=lambda: uuid.uuid4().hex.upper())
    instance_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class FakeEvolution:
    """The fake's state, and the ASGI app serving it (``uvicorn.Config(fake, ...)``).

    Tests change it from their own thread while the server runs in another;
    each change is one dict, set or deque operation, atomic under the GIL.
    """

    api_key: str = "EVOLUTION-GLOBAL-KEY"
    instances: dict[str, FakeInstance] = field(default_factory=dict)
    not_on_whatsapp: set[str] = field(default_factory=set)
    sends: list[RecordedSend] = field(default_factory=list)
    # The ``numbers`` of each ``chat/whatsappNumbers`` call, in order.
    checks: list[list[str]] = field(default_factory=list)
    # Set: every ``chat/whatsappNumbers`` is answered with this HTTP status (an error).
    check_refusal: int | None = None
    webhook_sets: list[RecordedWebhookSet] = field(default_factory=list)
    # instance -> the webhook settings it holds (the ``webhook`` object last set).
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Set: every ``webhook/set`` is answered with this (HTTP status, Evolution message).
    webhook_refusal: tuple[int, object] | None = None
    _scripts: dict[str, deque[Answer]] = field(default_factory=dict)
    _stalls: dict[str, float] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=itertools.count)
    _id_prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:8].upper())

    # --- set up ---------------------------------------------------------------------

    def add_instance(self, name: str, state: str = "open", token: str | None = None) -> None:
        """An instance (``open``: its phone is paired and connected)."""
        instance = FakeInstance(name, state)
        if token is not None:
            instance.token = token
        self.instances[name] = instance

    def set_state(self, name: str, state: str) -> None:
        """``open``, ``connecting`` or ``close`` (or anything, e.g. ``refused``)."""
        self.instances[name].state = state

    def mark_not_on_whatsapp(self, digits: str) -> None:
        """Sends to ``digits`` fail Evolution's pre-check: 400 with ``exists: false``."""
        self.not_on_whatsapp.add(digits)

    def script(self, digits: str, answers: Iterable[Answer]) -> None:
        """Answer the next sends to ``digits`` with these, one per send, then as usual."""
        self._scripts.setdefault(digits, deque()).extend(answers)

    def stall(self, digits: str, seconds: float) -> None:
        """Wait this long before answering each send to ``digits`` (for read timeouts)."""
        self._stalls[digits] = seconds

    def refuse_webhook_set(self, status: int = 400, message: object = None) -> None:
        """Answer every ``webhook/set`` with ``status`` and Evolution's envelope."""
        self.webhook_refusal = (status, message if message is not None else ["refused"])

    # --- read back ------------------------------------------------------------------

    def sends_to(self, digits: str) -> list[RecordedSend]:
        """The recorded sends addressed to ``digits``, in order."""
        return [
            send
            for send in self.sends
            if isinstance(send.body, dict) and send.body.get("number") == digits
        ]

    def webhook_call(self, instance: str) -> tuple[str, dict[str, str]]:
        """Where Evolution would post the instance's webhooks (the path of the registered
        URL) and the headers it would send (the registered ones, and JSON)."""
        webhook = self.webhooks[instance]
        headers = {"Content-Type": "application/json"}
        headers.update({str(k): str(v) for k, v in dict(webhook.get("headers") or {}).items()})
        return urlsplit(str(webhook["url"])).path, headers

    # --- the app --------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        status, content, delay = self.handle(
            scope["method"], scope["path"], header(scope, b"apikey"), body
        )
        await answer(send, status, content, delay, b"application/json; charset=utf-8")

    def handle(
        self, method: str, path: str, apikey: str | None, body: bytes
    ) -> tuple[int, bytes, float]:
        """One call's answer: (HTTP status, body, seconds to wait before answering)."""
        parts = path.strip("/").split("/")
        if len(parts) != 3:
            return _error(404, "Not Found", f"Cannot {method} {path}")
        route = (method, parts[0], parts[1])
        name = parts[2]
        if route not in {
            ("GET", "instance", "connectionState"),
            ("POST", "message", "sendText"),
            ("POST", "chat", "whatsappNumbers"),
            ("POST", "webhook", "set"),
            ("GET", "webhook", "find"),
        }:
            return _error(404, "Not Found", f"Cannot {method} {path}")
        instance = self.instances.get(name)
        allowed = apikey is not None and (
            apikey == self.api_key or (instance is not None and apikey == instance.token)
        )
        if not allowed:
            if route == ("POST", "message", "sendText"):
                self._record_send(name, apikey, body, 401, None)
            return _error(401, "Unauthorized", "Unauthorized")
        if instance is None:
            return _error(404, "Not Found", [f'The "{name}" instance does not exist'])
        if route[1] == "instance":
            answer = {"instance": {"instanceName": name, "state": instance.state}}
            return 200, _json(answer), 0.0
        if route[1] == "message":
            return self._send(instance, apikey, body)
        if route[1] == "chat":
            return self._check_numbers(instance, body)
        if method == "GET":
            return 200, _json(self.webhooks.get(name)), 0.0
        return self._set_webhook(instance, apikey, body)

    def _record_send(
        self, name: str, apikey: str | None, body: bytes, status: int, message_id: str | None
    ) -> None:
        self.sends.append(RecordedSend(name, apikey, _loads(body), status, message_id))

    def _send(
        self, instance: FakeInstance, apikey: str | None, body: bytes
    ) -> tuple[int, bytes, float]:
        document = _loads(body)
        status, answer, message_id = self._answer_send(instance, document)
        self._record_send(instance.name, apikey, body, status, message_id)
        number = document.get("number") if isinstance(document, dict) else None
        delay = self._stalls.get(number, 0.0) if isinstance(number, str) else 0.0
        return status, answer, delay

    def _answer_send(
        self, instance: FakeInstance, document: object
    ) -> tuple[int, bytes, str | None]:
        if not isinstance(document, dict):
            status, answer, _ = _error(
                400, "Bad Request", [["instance is not of a type(s) object"]]
            )
            return status, answer, None
        for required in ("number", "text"):
            if not isinstance(document.get(required), str) or not document[required]:
                status, answer, _ = _error(
                    400, "Bad Request", [[f'instance requires property "{required}"']]
                )
                return status, answer, None
        number = document["number"]
        script = self._scripts.get(number)
        if script:
            scripted_status, scripted_body = script.popleft()
            return scripted_status, scripted_body, None
        if instance.state != "open":
            status, answer, _ = _error(400, "Bad Request", ["Error: Connection Closed"])
            return status, answer, None
        if number in self.not_on_whatsapp:
            checked = {"jid": f"{number}@s.whatsapp.net", "exists": False, "number": number}
            status, answer, _ = _error(400, "Bad Request", [checked])
            return status, answer, None
        message_id = f"3EB0{self._id_prefix}{next(self._ids):010d}"
        accepted = {
            "key": {"remoteJid": f"{number}@s.whatsapp.net", "fromMe": True, "id": message_id},
            "pushName": "Você",
            "status": "PENDING",
            "message": {"conversation": document["text"]},
            "messageType": "conversation",
            "messageTimestamp": int(time.time()),
            "instanceId": instance.instance_id,
            "source": "web",
        }
        return 201, _json(accepted), message_id

    def _check_numbers(self, instance: FakeInstance, body: bytes) -> tuple[int, bytes, float]:
        document = _loads(body)
        numbers = document.get("numbers") if isinstance(document, dict) else None
        if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
            return _error(400, "Bad Request", [['instance requires property "numbers"']])
        self.checks.append(list(numbers))
        if self.check_refusal is not None:
            return _error(self.check_refusal, "Internal Server Error", "check failed")
        if instance.state != "open":
            return _error(400, "Bad Request", ["Error: Connection Closed"])
        answer = [
            {"jid": f"{n}@s.whatsapp.net", "exists": n not in self.not_on_whatsapp, "number": n}
            for n in numbers
        ]
        return 200, _json(answer), 0.0

    def _set_webhook(
        self, instance: FakeInstance, apikey: str | None, body: bytes
    ) -> tuple[int, bytes, float]:
        document = _loads(body)
        status, answer, _ = self._answer_set(instance, document)
        self.webhook_sets.append(RecordedWebhookSet(instance.name, apikey, document, status))
        return status, answer, 0.0

    def _answer_set(self, instance: FakeInstance, document: object) -> tuple[int, bytes, float]:
        if self.webhook_refusal is not None:
            status, message = self.webhook_refusal
            return _error(status, "Refused", message)
        webhook = document.get("webhook") if isinstance(document, dict) else None
        if not isinstance(webhook, dict):
            return _error(400, "Bad Request", [['instance requires property "webhook"']])
        if not isinstance(webhook.get("enabled"), bool):
            return _error(400, "Bad Request", [['webhook requires property "enabled"']])
        if not isinstance(webhook.get("url"), str):
            return _error(400, "Bad Request", [['webhook requires property "url"']])
        events = webhook.get("events")
        if webhook["enabled"] and events is None:
            # Evolution reads events.length without a check: a TypeError, answered 500.
            return _error(
                500,
                "Internal Server Error",
                "Cannot read properties of undefined (reading 'length')",
            )
        if events is not None:
            if not isinstance(events, list):
                return _error(400, "Bad Request", [["webhook.events is not of a type(s) array"]])
            for position, event in enumerate(events):
                if event not in KNOWN_EVENTS:
                    return _error(
                        400,
                        "Bad Request",
                        [[f"webhook.events[{position}] is not one of enum values: ..."]],
                    )
        headers = webhook.get("headers") or {}
        if not isinstance(headers, dict):
            return _error(400, "Bad Request", [["webhook.headers is not of a type(s) object"]])
        stored = {
            "enabled": webhook["enabled"],
            "url": webhook["url"],
            "headers": headers,
            "byEvents": bool(webhook.get("byEvents", False)),
            "base64": bool(webhook.get("base64", False)),
            "events": list(events or []) if webhook["enabled"] else [],
        }
        self.webhooks[instance.name] = stored
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        row = {
            "id": uuid.uuid4().hex[:25],
            "url": stored["url"],
            "headers": stored["headers"],
            "enabled": stored["enabled"],
            "events": stored["events"],
            "webhookByEvents": stored["byEvents"],
            "webhookBase64": stored["base64"],
            "createdAt": now,
            "updatedAt": now,
            "instanceId": instance.instance_id,
        }
        return 201, _json(row), 0.0


def _loads(body: bytes) -> object:
    try:
        document: object = json.loads(body)
    except ValueError:
        return None
    return document


def _json(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


def _error(status: int, error: str, message: object) -> tuple[int, bytes, float]:
    """An answer in Evolution's error envelope."""
    return status, _json({"status": status, "error": error, "response": {"message": message}}), 0.0


# --- webhooks as Evolution posts them ----------------------------------------------------


def envelope(
    event: str,
    data: object,
    *,
    instance: str = "shop1",
    date_time: str | None = "2026-11-28T12:00:05.000Z",
    apikey: str | None = None,
) -> dict[str, object]:
    """A webhook body as Evolution posts it (``date_time`` None: left out)."""
    document: dict[str, object] = {
        "event": event,
        "instance": instance,
        "data": data,
        "destination": "https://wabroadcast.example/api/whatsapp/webhooks/evolution/x",
        "sender": "972509999999@s.whatsapp.net",
        "server_url": "https://evolution.example",
        "apikey": apikey,
    }
    if date_time is not None:
        document["date_time"] = date_time
    return document


def update_item(
    key_id: str,
    status: str,
    *,
    remote_jid: str = "972501234567@s.whatsapp.net",
    from_me: bool = True,
    message_id: str = "cmfakerowid0001",
) -> dict[str, object]:
    """One ``messages.update`` ``data`` object (``messageId`` is Evolution's row id)."""
    return {
        "keyId": key_id,
        "remoteJid": remote_jid,
        "fromMe": from_me,
        "participant": None,
        "status": status,
        "instanceId": "0b6f4c1e-1111-2222-3333-444455556666",
        "messageId": message_id,
    }


def messages_update_body(
    key_id: str,
    status: str,
    *,
    instance: str = "shop1",
    date_time: str | None = "2026-11-28T12:00:05.000Z",
) -> bytes:
    """A ``messages.update`` webhook body for one message."""
    document = envelope(
        "messages.update", update_item(key_id, status), instance=instance, date_time=date_time
    )
    return json.dumps(document, separators=(",", ":")).encode()


def webhook_headers(secret: str) -> dict[str, str]:
    """The headers Evolution sends with the webhook wabroadcast registered: JSON and the
    session's secret."""
    return {"Content-Type": "application/json", SECRET_HEADER: secret}


@contextmanager
def serve_fake_evolution(
    fake: FakeEvolution, *, host: str = "127.0.0.1", port: int = 0, start_timeout: float = 10.0
) -> Iterator[str]:
    """Serve ``fake`` with uvicorn in a background thread; yields its base URL.

    ``port=0`` takes a free port. On exit the server is asked to stop and the
    thread is joined, so no socket outlives the block.
    """
    with serve_asgi(
        fake, "the fake Evolution API", host=host, port=port, start_timeout=start_timeout
    ) as url:
        yield url
