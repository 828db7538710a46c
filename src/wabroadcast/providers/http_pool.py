"""A small keep-alive HTTP/1.1 connection pool for providers' hot paths.

A provider that calls a remote API once per message (Meta's Cloud API has no
batch send) spends most of the dispatcher's CPU in the HTTP client: through
httpx's client, about 0.9 ms per request here, against about 0.1 ms for this
pool. It is asyncio protocols with h11 reading and writing the HTTP (no parsing
of our own): one request at a time per connection, answers gathered as they
arrive, connections the server closes dropped when they close. Failures are
raised as httpx's exceptions (``httpx.ConnectError``, ``httpx.ReadTimeout``...)
and an ``httpx.Timeout`` configures it, so a caller classifies them as it would
httpx's: a connect error or timeout means the request never left; a read
timeout or a broken answer means it may have.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from typing import NamedTuple, cast

import h11
import httpx

from wabroadcast.providers.base import SendOutcome, SendResult

# An idle connection unused this long is closed rather than reused. Servers close idle
# connections too (uvicorn and Node after 5 s), and a request written as the server closes
# its connection has an unknown outcome: stay clear of that moment.
KEEPALIVE_EXPIRY_S = 4.0
# With both IPv6 and IPv4 addresses, the next address is tried this soon (as httpx does).
HAPPY_EYEBALLS_DELAY_S = 0.25
# Answers bigger than this are refused (the APIs called answer a few hundred bytes).
MAX_ANSWER_BYTES = 4 * 1024 * 1024


class Answer(NamedTuple):
    """A whole answer: its status and its body, decoded."""

    status_code: int
    content: bytes


class Origin(NamedTuple):
    """Where connections go: scheme, host and port."""

    scheme: str
    host: str
    port: int


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time, h11 speaking the HTTP.

    The answer is gathered as it arrives (``data_received``) and handed to the
    waiting request whole; a connection the server closes is dropped from the
    pool when it closes, not found dead by the next send.
    """

    def __init__(self, pool: HttpPool, origin: Origin) -> None:
        self.origin = origin
        self.closed = False
        self.idle_since = 0.0
        self._pool = pool
        self._loop = pool.loop
        self._h11 = h11.Connection(h11.CLIENT)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Answer] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._read_timeout = 0.0
        self._last_read = 0.0
        self._status = 0
        self._encoding = b""
        self._body: list[bytes] = []
        self._size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    async def request(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Answer:
        """Send one request and wait for its whole answer; raises httpx's exceptions."""
        transport = self._transport
        if transport is None or self.closed:  # the pool hands out open ones only
            raise httpx.ConnectError("the connection was closed before the request")
        h = self._h11
        try:
            data = h.send(h11.Request(method=method, target=target, headers=headers))
            if body:
                data += h.send(h11.Data(data=body))
            data += h.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            self.abort()
            raise httpx.LocalProtocolError(str(exc)) from exc
        loop = self._loop
        waiter: asyncio.Future[Answer] = loop.create_future()
        self._waiter = waiter
        self._status, self._encoding, self._body, self._size = 0, b"", [], 0
        read_timeout = self._pool.read_timeout
        if read_timeout is not None:
            self._read_timeout = read_timeout
            self._last_read = loop.time()
            self._timer = loop.call_at(self._last_read + read_timeout, self._check_timeout)
        transport.write(data)
        try:
            return await waiter
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._waiter = None

    @property
    def reusable(self) -> bool:
        """Open, and done with its last request and answer."""
        h = self._h11
        return not self.closed and h.our_state is h11.IDLE and h.their_state is h11.IDLE

    def _check_timeout(self) -> None:
        """``read_timeout`` seconds without a byte of the answer: the request fails."""
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        due = self._last_read + self._read_timeout
        if self._loop.time() < due:
            self._timer = self._loop.call_at(due, self._check_timeout)
            return
        waiter.set_exception(httpx.ReadTimeout("timed out waiting for the answer"))
        self.abort()

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            # Nothing was asked (or the request is over): the server talks out of turn.
            self.abort()
            return
        self._last_read = self._loop.time()
        self._h11.receive_data(data)
        self._read_events(waiter)

    def _read_events(self, waiter: asyncio.Future[Answer]) -> None:
        """Take what h11 has read so far; answer ``waiter`` once the answer is whole."""
        h = self._h11
        try:
            while True:
                event = h.next_event()
                if isinstance(event, h11.Data):
                    self._size += len(event.data)
                    if self._size > MAX_ANSWER_BYTES:
                        raise h11.RemoteProtocolError("the answer is too big")
                    self._body.append(event.data)
                elif isinstance(event, h11.Response):
                    self._status = event.status_code
                    for name, value in event.headers:
                        if name == b"content-encoding":
                            self._encoding = value.lower()
                elif isinstance(event, h11.EndOfMessage):
                    content = decoded(b"".join(self._body), self._encoding)
                    if (
                        h.our_state is h11.DONE
                        and h.their_state is h11.DONE
                        and not h.trailing_data[0]
                    ):
                        h.start_next_cycle()
                    else:
                        # The server closes it (Connection: close, HTTP/1.0), or sent
                        # more than the answer: not to be used again.
                        self.close()
                    waiter.set_result(Answer(self._status, content))
                    return
                elif event is h11.NEED_DATA:
                    return
                elif not isinstance(event, h11.InformationalResponse):  # closed, or paused
                    raise h11.RemoteProtocolError(
                        "the server closed the connection without a whole answer"
                    )
        except (h11.RemoteProtocolError, httpx.DecodingError) as exc:
            if not waiter.done():
                waiter.set_exception(
                    exc
                    if isinstance(exc, httpx.DecodingError)
                    else httpx.RemoteProtocolError(str(exc))
                )
            self.abort()

    def eof_received(self) -> bool | None:
        self._end_of_answer()
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._end_of_answer()
        self._pool.forget(self)

    def _end_of_answer(self) -> None:
        """The server stopped sending: an answer read until the close is whole now."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if not self._status and not self._h11.trailing_data[0]:
                waiter.set_exception(
                    httpx.RemoteProtocolError("the server closed the connection without answering")
                )
                return
            self._h11.receive_data(b"")
            self._read_events(waiter)
            if not waiter.done():  # pragma: no cover - _read_events answers it
                waiter.set_exception(httpx.RemoteProtocolError("the server closed the connection"))

    def close(self) -> None:
        """Not to be used again; the transport is closed just after this callback (closing
        a TLS transport from inside its own ``data_received`` breaks its shutdown)."""
        if not self.closed:
            self.closed = True
            if self._transport is not None:
                self._loop.call_soon(self._transport.close)
            self._pool.forget(self)

    def abort(self) -> None:
        """Close at once, dropping anything unsent: the connection is in an unknown state."""
        if not self.closed:
            self.closed = True
            if self._transport is not None:
                self._loop.call_soon(self._transport.abort)
            self._pool.forget(self)


class HttpPool:
    """Keep-alive HTTP/1.1 connections per origin, at most ``max_connections`` open.

    A send takes the most recently used idle connection of its origin (so the
    busy ones stay warm and the others expire), else opens one; with all
    ``max_connections`` busy it waits up to the pool timeout (``httpx.PoolTimeout``).
    """

    def __init__(self, timeout: httpx.Timeout, max_connections: int, tls: ssl.SSLContext) -> None:
        self.loop = asyncio.get_running_loop()
        self.read_timeout = timeout.read
        self._connect_timeout = timeout.connect
        self._pool_timeout = timeout.pool
        self._max = max_connections
        self._tls = tls
        self._busy = asyncio.Semaphore(max_connections)
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._closed = False

    async def request(
        self,
        origin: Origin,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes = b"",
    ) -> Answer:
        busy = self._busy
        if busy.locked():
            try:
                async with asyncio.timeout(self._pool_timeout):
                    await busy.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no pooled connection was free in time") from None
        else:
            await busy.acquire()
        connection = None
        try:
            connection = self._idle_connection(origin) or await self._connect(origin)
            return await connection.request(method, target, headers, body)
        finally:
            if connection is not None:
                self._put_back(connection)
            busy.release()

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = self.loop.time()
        # The least recently used one too, if it expired: the idle list stays short.
        if now - idle[0].idle_since >= KEEPALIVE_EXPIRY_S:
            idle.pop(0).close()
        while idle:
            connection = idle.pop()
            if connection.closed:
                continue
            if now - connection.idle_since < KEEPALIVE_EXPIRY_S:
                return connection
            connection.close()
        return None

    async def _connect(self, origin: Origin) -> _Connection:
        if len(self._open) >= self._max:
            self._close_oldest_idle()
        connection = _Connection(self, origin)
        self._open.add(connection)
        tls = origin.scheme == "https"
        try:
            async with asyncio.timeout(self._connect_timeout):
                await self.loop.create_connection(
                    lambda: connection,
                    origin.host,
                    origin.port,
                    ssl=self._tls if tls else None,
                    server_hostname=origin.host if tls else None,
                    happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY_S,
                )
        except TimeoutError:
            connection.abort()
            raise httpx.ConnectTimeout("no connection was made in time") from None
        except OSError as exc:  # refused, unreachable, no such host, a TLS failure
            connection.abort()
            raise httpx.ConnectError(str(exc) or repr(exc)) from exc
        except BaseException:
            connection.abort()
            raise
        return connection

    def _close_oldest_idle(self) -> None:
        oldest: list[_Connection] | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].idle_since < oldest[0].idle_since):
                oldest = idle
        if oldest is not None:
            oldest.pop(0).close()

    def _put_back(self, connection: _Connection) -> None:
        if connection.closed:
            return
        if self._closed or not connection.reusable:
            connection.abort()  # closed with the pool, or cut off in the middle of a request
            return
        connection.idle_since = self.loop.time()
        idle = self._idle.get(connection.origin)
        if idle is None:
            idle = self._idle[connection.origin] = []
        idle.append(connection)

    def forget(self, connection: _Connection) -> None:
        """A connection closed: it is no longer open, nor idle."""
        if connection in self._open:
            self._open.discard(connection)
            idle = self._idle.get(connection.origin)
            if idle and connection in idle:
                idle.remove(connection)

    def close(self) -> None:
        """Close the idle connections now, the busy ones when their request is over."""
        self._closed = True
        for idle in list(self._idle.values()):
            for connection in list(idle):
                connection.close()
        self._idle = {}


def decoded(content: bytes, encoding: bytes) -> bytes:
    """The answer's body without its content coding (asked for none, a server may use one)."""
    if not encoding or encoding == b"identity":
        return content
    try:
        if encoding in (b"gzip", b"x-gzip"):
            return zlib.decompress(content, 16 + zlib.MAX_WBITS)
        if encoding == b"deflate":
            try:
                return zlib.decompress(content)
            except zlib.error:
                return zlib.decompress(content, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise httpx.DecodingError(f"the answer's {encoding!r} coding is broken") from exc
    raise httpx.DecodingError(f"the answer has an unknown content coding {encoding!r}")


def never_left(exc: httpx.TransportError, upstream: str) -> SendResult | None:
    """The result of a send whose request surely never reached ``upstream`` (no
    connection was made, or none in time): retry later. None when it may have left;
    the caller then raises, and the dispatcher records the outcome as unknown."""
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return SendResult(
            SendOutcome.RETRY_LATER,
            error_code="TIMEOUT",
            error_message=f"No connection to {upstream} was made in time; "
            "the message did not leave.",
        )
    if isinstance(exc, httpx.ConnectError):
        return SendResult(
            SendOutcome.RETRY_LATER,
            error_code="CONNECTION_REFUSED",
            error_message=f"The connection to {upstream} was refused; the message did not leave.",
        )
    return None
