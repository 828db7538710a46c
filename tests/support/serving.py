"""Serving a fake upstream (a bare ASGI app) over real HTTP, in a thread of the test process.

The fakes are bare ASGI apps, not a framework's, because benchmarks push thousands
of requests a second through them; these are the pieces of plumbing they share.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Event = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Event]]
Send = Callable[[Event], Awaitable[None]]


async def read_body(receive: Receive) -> bytes:
    """The whole request body."""
    body = b""
    more_body = True
    while more_body:
        event = await receive()
        body += event.get("body", b"")
        more_body = event.get("more_body", False)
    return body


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (``name`` in lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def answer(
    send: Send,
    status: int,
    body: bytes,
    delay: float = 0.0,
    content_type: bytes = b"application/json",
) -> None:
    """Answer with ``body``, ``delay`` seconds from now."""
    if delay:
        await asyncio.sleep(delay)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serve_asgi(
    app: Callable[..., Awaitable[None]],
    name: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    start_timeout: float = 10.0,
) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread; yields its base URL.

    ``port=0`` takes a free port. On exit the server is asked to stop and the
    thread is joined, so no socket outlives the block.
    """
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start on {host}:{port}")
            time.sleep(0.01)
        bound_port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=start_timeout)
