"""A cap on how many request-body bytes the JSON API reads: 413 ``PAYLOAD_TOO_LARGE`` above it.

A pure ASGI middleware (``BaseHTTPMiddleware`` would cost every request a task
and a memory stream). A body whose ``Content-Length`` is above the cap is
refused before a byte of it is read. A body without one (chunked) is counted as
the application pulls it through ``receive``: the chunk that would pass the cap
is never handed over; the read fails instead, the application's own answer to
that failure is dropped, and the 413 envelope is sent in its place. So the
process never holds more than the cap of any body, and a refused request stores
nothing: FastAPI reads a JSON body before it runs the route's dependencies
(authentication included), and the webhook routes read theirs before storing.

Routes with a smaller cap of their own (provider webhooks: 1 MiB) keep it.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wabroadcast.api.errors import envelope
from wabroadcast.domain.errors import PayloadTooLarge

# Where the cap applies: the JSON API. The dashboard's forms have limits of their own
# (its CSV upload is spooled to disk and answered with a page, not an envelope).
API_PREFIX = "/api/"


class BodyTooLarge(HTTPException):
    """Raised by the counting ``receive`` once a body passes the cap.

    An ``HTTPException`` so that FastAPI's body reader passes it on untouched and
    the error handlers answer it quietly; the middleware replaces that answer.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, _message(max_bytes))


def _message(max_bytes: int) -> str:
    return f"The request body is larger than {max_bytes} bytes"


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``, or None when it has none (or none we can read)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` on paths under ``prefix``."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, prefix: str = API_PREFIX) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return

        max_bytes = self.max_bytes
        received = 0
        refused = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:  # an application that tries again gets the same answer
                raise BodyTooLarge(max_bytes)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    refused = True
                    raise BodyTooLarge(max_bytes)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:  # the application's answer to the failed read: ours replaces it
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise
        if refused and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLarge(_message(self.max_bytes), details={"max_bytes": self.max_bytes})
        # Connection: close, so the server does not go on reading what is left of the body.
        response = envelope(
            error.http_status,
            error.error_code,
            error.message,
            error.details,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
