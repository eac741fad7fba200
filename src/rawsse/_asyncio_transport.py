"""``AsyncioTransport``: the async client's own httpx transport, lean on asyncio.

httpx's default transport reads through anyio's socket stream: per read, a
cancel scope (``fail_after``, even with no timeout), an exception-mapping
context, an ``asyncio.Event`` and two calls that pause and resume the
transport's reading (each a system call on uvloop): about half of what reading
upstream cost the relay per event.  This transport is httpcore's connection
pool (pooling, limits, keep-alive expiry) holding rawsse's own HTTP/1.1
connections (``_http11.py``: TLS, the request, the response through a sans-I/O
reader), and ``body_reader`` reads a body without httpx's and the pool's
generator layers.  On asyncio the connections read a network stream of its own,
an ``asyncio.Protocol`` that:

* keeps reading while the buffer holds less than ``HIGH_WATER`` bytes (then
  pauses the transport until a read takes it below), so a read finds what
  arrived meanwhile and returns it without a suspension;
* waits, when the buffer is empty, on one future (with a loop timer only when
  httpcore gives a timeout or the reading task set ``READ_DEADLINE``);
* answers ``is_readable`` (the pool's "did the server close this idle
  connection?") from what it saw.

Deadlines and cancellation stay the callers': a cancelled read (anyio's cancel
scope cancels the task) leaves the connection to close itself, as before; a
shell that knows its body is read here (``honours_read_deadline``) may instead
set ``READ_DEADLINE`` around a read, which then ends with ``ReadDeadline``.
Under trio the connections use httpcore's own trio backend.  A caller's own
``http_client`` is used as given.
"""

# httpcore's network interface takes each call's ``timeout`` as an argument.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextvars
import ssl
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import anyio
import httpcore
import httpx

from ._http11 import BODY, ConnectionSettings, Http11Pool

__all__ = [
    "HIGH_WATER",
    "READ_DEADLINE",
    "AsyncioBackend",
    "AsyncioTransport",
    "ReadDeadline",
    "backend_clock",
    "body_reader",
    "honours_read_deadline",
]

HIGH_WATER = 64 * 1024
"""Bytes read from a connection and not yet taken, before its reading pauses."""

READ_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "rawsse_read_deadline", default=None
)
"""When set (on the event loop's clock), a read of this task that waits ends at it
with ``ReadDeadline``: the shell's deadline without a cancel scope."""


class ReadDeadline(BaseException):
    """A read reached ``READ_DEADLINE``.  Not an ``Exception``, as a cancellation is
    not: httpcore closes the connection on its way out, and no layer between (httpx's
    exception mapping, a recording) takes it for an error of the connection."""


def honours_read_deadline(response: httpx.Response) -> bool:
    """True when ``response``'s body is read through this module's stream, whose
    reads end at ``READ_DEADLINE``."""
    return isinstance(response.extensions.get("network_stream"), _Stream)


def backend_clock() -> Callable[[], float]:
    """The running backend's clock, as ``anyio.current_time`` reads it, for a hot path."""
    loop = _running_loop()
    if loop is not None:
        return loop.time
    import trio

    return trio.current_time


_SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)

# httpcore's exceptions as httpx raises them (looked up along the exception's
# classes, so the most specific wins), so ``translate_error`` sees what it sees
# behind httpx's own transport.
_HTTPX_ERRORS: dict[type[Exception], type[httpx.HTTPError]] = {
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
    httpcore.ProtocolError: httpx.ProtocolError,
}


def _as_httpx(exc: Exception) -> Exception | None:
    """httpx's exception for one of httpcore's (None for any other)."""
    for cls in type(exc).__mro__:
        mapped = _HTTPX_ERRORS.get(cls)
        if mapped is not None:
            return mapped(str(exc))
    return None


class AsyncioTransport(httpx.AsyncBaseTransport):
    """httpcore's connection pool of ``Http11Connection``s over ``AsyncioBackend``, as
    an httpx transport."""

    def __init__(self, *, limits: httpx.Limits, ssl_context: ssl.SSLContext) -> None:
        settings = ConnectionSettings(
            AsyncioBackend(), ssl_context=ssl_context, keepalive_expiry=limits.keepalive_expiry
        )
        self._pool = Http11Pool(
            settings,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = await self._pool.handle_async_request(core_request)
        except Exception as exc:
            mapped = _as_httpx(exc)
            if mapped is None:
                raise
            raise mapped from exc
        extensions = response.extensions
        body = extensions.pop(BODY, None)
        out = httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response.stream),
            extensions=extensions,
        )
        if body is not None:
            _READERS[out] = _Reader(body)
        return out

    async def aclose(self) -> None:
        await self._pool.aclose()


# Keyed by the response itself, not carried in its extensions: a response made
# from this one (a recording's) keeps the extensions but must be read through its
# own stream.
_READERS: weakref.WeakKeyDictionary[httpx.Response, _Reader] = weakref.WeakKeyDictionary()


def body_reader(response: httpx.Response) -> AsyncIterator[bytes] | None:
    """The body of a response this transport made, read without the generator
    layers of httpx and the pool (one per layer per read); None for any other.
    Closing ``response`` still releases the connection."""
    return _READERS.pop(response, None)


class _Reader:
    """Reads of a body (the connection's, or the pool's stream), errors as httpx's."""

    __slots__ = ("_next",)

    def __init__(self, body: AsyncIterator[bytes]) -> None:
        self._next = body.__anext__

    def __aiter__(self) -> _Reader:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._next()
        except Exception as exc:  # StopAsyncIteration maps to nothing: it goes on
            mapped = _as_httpx(exc)
            if mapped is None:
                raise
            raise mapped from exc


class _Body(httpx.AsyncByteStream):
    """A response body from the pool, its errors as httpx's."""

    __slots__ = ("_stream",)

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _Reader(self._stream.__aiter__())

    async def aclose(self) -> None:
        await self._stream.aclose()


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Connects with ``_Protocol`` streams on asyncio, and with httpcore's own
    backend under trio."""

    def __init__(self) -> None:
        self._trio: httpcore.AsyncNetworkBackend | None = None

    def _other(self) -> httpcore.AsyncNetworkBackend:
        if self._trio is None:
            self._trio = httpcore.TrioBackend()
        return self._trio

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = _running_loop()
        if loop is None:
            return await self._other().connect_tcp(
                host, port, timeout, local_address, socket_options
            )
        local = None if local_address is None else (local_address, 0)
        return await _connect(
            loop.create_connection(_Protocol, host, port, local_addr=local),
            timeout,
            socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = _running_loop()
        if loop is None:
            return await self._other().connect_unix_socket(path, timeout, socket_options)
        return await _connect(loop.create_unix_connection(_Protocol, path), timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # trio
        return None


async def _connect(
    connecting: Any, timeout: float | None, socket_options: Iterable[_SocketOption] | None
) -> _Stream:
    try:
        with anyio.fail_after(timeout):
            transport, protocol = await connecting
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(str(exc)) from exc
    except OSError as exc:
        raise httpcore.ConnectError(str(exc)) from exc
    sock = transport.get_extra_info("socket")
    for option in socket_options or ():
        sock.setsockopt(*option)
    return _Stream(transport, protocol)


class _Protocol(asyncio.Protocol):
    """One connection's received bytes, and the reader waiting for them."""

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.paused = False  # reading paused: the buffer is full
        self.eof = False
        self.lost = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None  # a writer waiting for room
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size >= HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        _wake(self.waiter)

    def eof_received(self) -> None:
        self.eof = True
        _wake(self.waiter)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc
        _wake(self.waiter)
        _wake(self.drained)

    def pause_writing(self) -> None:
        self.drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        _wake(self.drained)
        self.drained = None


def _wake(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _deadline_passed(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(ReadDeadline())


class _Stream(httpcore.AsyncNetworkStream):
    """httpcore's view of one connection (see the module docstring)."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._closed = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        chunks = protocol.chunks
        if not chunks:
            if self._closed:
                raise httpcore.ReadError("the connection is closed")
            if protocol.eof or protocol.lost:
                if protocol.error is not None:
                    raise httpcore.ReadError(str(protocol.error)) from protocol.error
                return b""
            await self._wait(timeout)
            if not chunks:
                return await self.read(max_bytes, timeout)  # the end, or an error
        data = chunks.popleft()
        if chunks and len(data) < max_bytes:  # several arrived: one read takes them
            parts = [data]
            size = len(data)
            while chunks and size + len(chunks[0]) <= max_bytes:
                part = chunks.popleft()
                parts.append(part)
                size += len(part)
            data = b"".join(parts)
        if len(data) > max_bytes:
            chunks.appendleft(data[max_bytes:])
            data = data[:max_bytes]
        protocol.size -= len(data)
        if protocol.paused and protocol.size < HIGH_WATER:
            protocol.paused = False
            self._transport.resume_reading()
        return data

    async def _wait(self, timeout: float | None) -> None:
        protocol = self._protocol
        loop = asyncio.get_running_loop()
        waiter = protocol.waiter = loop.create_future()
        at = READ_DEADLINE.get()
        if timeout is not None and (at is None or loop.time() + timeout < at):
            timer = loop.call_later(timeout, _expire, waiter)
        elif at is not None:
            timer = loop.call_at(at, _deadline_passed, waiter)
        else:
            timer = None
        try:
            await waiter
        except TimeoutError as exc:
            raise httpcore.ReadTimeout("timed out reading") from exc
        finally:
            protocol.waiter = None
            if timer is not None:
                timer.cancel()

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        protocol = self._protocol
        if self._closed or protocol.lost:
            raise httpcore.WriteError("the connection is closed")
        if not buffer:
            return
        self._transport.write(buffer)
        drained = protocol.drained
        if drained is None:
            return
        loop = asyncio.get_running_loop()
        timer = None if timeout is None else loop.call_later(timeout, _expire, drained)
        try:
            await asyncio.shield(drained)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout("timed out writing") from exc
        finally:
            if timer is not None:
                timer.cancel()
        if protocol.lost:
            raise httpcore.WriteError("the connection was lost while writing")

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        transport = self._transport
        if transport.get_write_buffer_size():
            transport.abort()  # unsent bytes would keep the socket open
        else:
            transport.close()
        # The socket closes in the loop's next turn: let it come, so the peer sees
        # the close now, not whenever this task next waits.
        await asyncio.sleep(0)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            with anyio.fail_after(timeout):
                transport = await loop.start_tls(
                    self._transport,
                    self._protocol,
                    ssl_context,
                    server_hostname=server_hostname,
                    ssl_handshake_timeout=timeout,
                )
        except TimeoutError as exc:
            await self.aclose()
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except (OSError, ssl.SSLError) as exc:
            await self.aclose()
            raise httpcore.ConnectError(str(exc)) from exc
        except BaseException:
            await self.aclose()
            raise
        if transport is None:
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        self._protocol.transport = transport  # flow control now pauses the TLS transport
        return _Stream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        transport = self._transport
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        if info == "is_readable":
            protocol = self._protocol
            return bool(protocol.chunks) or protocol.eof or protocol.lost
        return None
