"""``Http11Connection``: the async client's own HTTP/1.1 connection, for httpcore's pool.

httpcore's ``AsyncHTTP11Connection`` reads a body through h11 (an event, a
state-machine step and a validation per chunk) and two generator layers; this
connection reads it through ``_http11_parse``'s ``ResponseParser``: one call per
network read, the read's body bytes in one piece.  Everything else is as
httpcore does it, over any ``httpcore.AsyncNetworkStream`` the pool's backend
connects (``AsyncioBackend``'s own stream on asyncio, httpcore's under trio):

* connecting (TCP or a unix socket, TLS with the pool's context and the
  ``sni_hostname`` extension) and the ``timeout`` extension's connect, read and
  write timeouts, as httpcore's ``ConnectTimeout``/``ReadTimeout``/``WriteTimeout``;
* writing the request (its head and ``request.stream``, chunk-encoded when its
  headers say ``Transfer-Encoding: chunked``); when writing fails the response
  the server may have sent is still read;
* the response with ``http_version``, ``reason_phrase`` and ``network_stream``
  extensions, a malformed one as ``RemoteProtocolError`` with h11's messages;
* the connection back to idle when the body was read whole and keep-alive
  holds; closed after a cancellation or any error, and when a body is closed
  before its end.

``Http11Pool`` is httpcore's connection pool making these connections (HTTP/1.1
only, no proxy).
"""

# httpcore's network interface takes each call's ``timeout`` as an argument.
# ruff: noqa: ASYNC109

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from time import monotonic

import anyio
import httpcore

from ._http11_parse import ParseError, ResponseHead, ResponseParser

__all__ = ["BODY", "READ_SIZE", "ConnectionSettings", "Http11Connection", "Http11Pool"]

READ_SIZE = 64 * 1024
"""Bytes asked of the network stream per read."""

BODY = "rawsse.body"
"""The response extension that carries the body itself (an async iterator of its
reads), for a reader that skips the pool's and httpx's generator layers."""

_SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)

_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_FIELD_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")

_NEW, _ACTIVE, _IDLE, _CLOSED = "NEW", "ACTIVE", "IDLE", "CLOSED"


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """What a pool gives each of its connections."""

    backend: httpcore.AsyncNetworkBackend
    ssl_context: ssl.SSLContext | None = None
    keepalive_expiry: float | None = None
    local_address: str | None = None
    uds: str | None = None
    socket_options: Iterable[_SocketOption] | None = None


class Http11Pool(httpcore.AsyncConnectionPool):
    """httpcore's connection pool, its connections ``Http11Connection``s."""

    def __init__(
        self, settings: ConnectionSettings, *, max_connections: int | None,
        max_keepalive_connections: int | None,
    ) -> None:  # fmt: skip
        # The pool's other settings serve only its own ``create_connection``.
        super().__init__(
            max_connections=max_connections, max_keepalive_connections=max_keepalive_connections
        )
        self._http11 = settings

    def create_connection(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        return Http11Connection(origin, self._http11)


class Http11Connection(httpcore.AsyncConnectionInterface):
    """One HTTP/1.1 connection to ``origin`` (see the module docstring)."""

    def __init__(self, origin: httpcore.Origin, settings: ConnectionSettings) -> None:
        self._origin = origin
        self._settings = settings
        self._stream: httpcore.AsyncNetworkStream | None = None
        self._state = _NEW
        self._expire_at: float | None = None
        self._requests = 0

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        if request.url.origin != self._origin:
            raise RuntimeError(
                f"Attempted to send request to {request.url.origin} on connection to {self._origin}"
            )
        if self._state != _NEW and self._state != _IDLE:
            raise httpcore.ConnectionNotAvailable()
        self._state = _ACTIVE
        self._requests += 1
        self._expire_at = None
        timeouts = request.extensions.get("timeout", {})
        try:
            stream = self._stream
            if stream is None:
                stream = await self._connect(request, timeouts.get("connect"))
            parser = ResponseParser(request.method)
            written = await _send(stream, request, timeouts.get("write"))
            head = await _receive_head(stream, parser, timeouts.get("read"))
        except BaseException:
            await self._close_shielded()
            raise
        # An encoded body goes out chunk by chunk, as h11 gave it: a decoder that meets
        # damage loses the piece it was decoding, not the good chunks before it.
        parser.split = _encoded(head)
        body = _Body(self, stream, parser, timeouts.get("read"))
        body.reusable = written and not _asks_close(request)
        return httpcore.Response(
            status=head.status,
            headers=head.headers,
            content=body,
            extensions={
                "http_version": head.http_version,
                "reason_phrase": head.reason,
                "network_stream": stream,
                BODY: body,  # taken out by the transport (``body_reader``)
            },
        )

    async def _connect(
        self, request: httpcore.Request, timeout: float | None
    ) -> httpcore.AsyncNetworkStream:
        settings = self._settings
        origin = self._origin
        host = origin.host.decode("ascii")
        if settings.uds is None:
            stream = await settings.backend.connect_tcp(
                host,
                origin.port,
                timeout=timeout,
                local_address=settings.local_address,
                socket_options=settings.socket_options,
            )
        else:
            stream = await settings.backend.connect_unix_socket(
                settings.uds, timeout=timeout, socket_options=settings.socket_options
            )
        self._stream = stream
        if origin.scheme in (b"https", b"wss"):
            context = settings.ssl_context or httpcore.default_ssl_context()
            context.set_alpn_protocols(["http/1.1"])
            server_hostname = request.extensions.get("sni_hostname") or host
            stream = await stream.start_tls(context, server_hostname, timeout)
            self._stream = stream
        return stream

    async def _response_closed(self, reuse: bool) -> None:
        if reuse and self._state == _ACTIVE:
            self._state = _IDLE
            expiry = self._settings.keepalive_expiry
            if expiry is not None:
                self._expire_at = monotonic() + expiry
        else:
            await self.aclose()

    async def _close_shielded(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.aclose()

    # -- what the pool asks --------------------------------------------------------------

    async def aclose(self) -> None:
        self._state = _CLOSED
        if self._stream is not None:
            await self._stream.aclose()

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return origin == self._origin

    def is_available(self) -> bool:
        return self._state == _IDLE

    def has_expired(self) -> bool:
        if self._state != _IDLE:
            return False
        if self._expire_at is not None and monotonic() > self._expire_at:
            return True
        # An idle connection with something to read: the server closed it (or broke it).
        assert self._stream is not None
        return bool(self._stream.get_extra_info("is_readable"))

    def is_idle(self) -> bool:
        return self._state == _IDLE

    def is_closed(self) -> bool:
        return self._state == _CLOSED

    def info(self) -> str:
        return f"{str(self._origin)!r}, HTTP/1.1, {self._state}, Request Count: {self._requests}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} [{self.info()}]>"


class _Body:
    """A response body: its reads go through the parser; closing it hands the
    connection back (idle, or closed)."""

    __slots__ = ("_closed", "_connection", "_parser", "_read", "_timeout", "reusable")

    def __init__(
        self,
        connection: Http11Connection,
        stream: httpcore.AsyncNetworkStream,
        parser: ResponseParser,
        timeout: float | None,
    ) -> None:
        self._connection = connection
        self._read = stream.read
        self._parser = parser
        self._timeout = timeout
        self._closed = False
        self.reusable = True
        """The request went out whole and did not ask to close the connection."""

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        parser = self._parser
        try:
            while not parser.done:
                if parser.held:  # body bytes that came with the head, or chunks held back
                    body = parser.feed_body(b"")
                else:
                    data = await self._read(READ_SIZE, self._timeout)
                    if not data:
                        parser.feed_eof()
                        continue
                    body = parser.feed_body(data)
                if body:
                    return body
        except ParseError as exc:
            await self._failed()
            raise httpcore.RemoteProtocolError(str(exc)) from exc
        except BaseException:
            await self._failed()
            raise
        raise StopAsyncIteration

    async def _failed(self) -> None:
        if not self._closed:
            self._closed = True
            await self._connection._close_shielded()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        parser = self._parser
        reuse = self.reusable and parser.done and parser.keep_alive and not parser.leftover
        await self._connection._response_closed(reuse)


async def _receive_head(
    stream: httpcore.AsyncNetworkStream, parser: ResponseParser, timeout: float | None
) -> ResponseHead:
    try:
        while True:
            data = await stream.read(READ_SIZE, timeout)
            if not data:
                parser.feed_eof()
            head = parser.feed_head(data)
            if head is not None:
                return head
    except ParseError as exc:
        raise httpcore.RemoteProtocolError(str(exc)) from exc


# -- the request --------------------------------------------------------------------------


async def _send(
    stream: httpcore.AsyncNetworkStream, request: httpcore.Request, timeout: float | None
) -> bool:
    """Write ``request``; False when writing failed (the server may have answered
    and closed early: its response is read all the same)."""
    head, chunked, length = _request_head(request)
    pending: bytes | None = head  # the head, sent with the first part of the body
    sent = 0
    body = request.stream
    assert isinstance(body, AsyncIterable)
    parts = body.__aiter__()
    try:
        async for part in parts:
            if not part:
                continue
            sent += len(part)
            if length is not None and sent > length:
                raise httpcore.LocalProtocolError("Too much data for declared Content-Length")
            if chunked:
                part = b"%x\r\n%b\r\n" % (len(part), part)
            if pending is not None:
                if len(pending) + len(part) <= READ_SIZE:
                    part = pending + part
                else:
                    await stream.write(pending, timeout)
                pending = None
            await stream.write(part, timeout)
        if length is not None and sent < length:
            raise httpcore.LocalProtocolError("Too little data for declared Content-Length")
        end = b"0\r\n\r\n" if chunked else b""
        if pending is not None:
            end = pending + end
        if end:
            await stream.write(end, timeout)
    except httpcore.WriteError:
        return False
    finally:
        # A body generator left behind would be finalised by the garbage collector
        # (which trio reports).
        aclose = getattr(parts, "aclose", None)
        if aclose is not None:
            await aclose()
    return True


def _request_head(request: httpcore.Request) -> tuple[bytes, bool, int | None]:
    """The request's head, whether its body is chunked, and its declared length
    (0 without framing headers); h11's checks, as ``LocalProtocolError``."""
    method, target = request.method, request.url.target
    if _TOKEN.fullmatch(method) is None:
        raise httpcore.LocalProtocolError(f"Illegal method {method!r}")
    if _TARGET.fullmatch(target) is None:
        raise httpcore.LocalProtocolError(f"Illegal target characters: {target!r}")
    hosts = []
    lines = []
    chunked = False
    length: int | None = None
    for name, value in request.headers:
        if _TOKEN.fullmatch(name) is None:
            raise httpcore.LocalProtocolError(f"Illegal header name {name!r}")
        if _FIELD_VALUE.fullmatch(value) is None:
            # Named, not shown: the value may be a key.
            raise httpcore.LocalProtocolError(f"Illegal header value in {name!r}")
        lower = name.lower()
        line = b"%b: %b\r\n" % (name, value)
        if lower == b"host":
            hosts.append(line)
            continue
        if lower == b"transfer-encoding":
            if value.lower() != b"chunked" or chunked:
                raise httpcore.LocalProtocolError("Only Transfer-Encoding: chunked is supported")
            chunked = True
        elif lower == b"content-length":
            values = {part.strip() for part in value.split(b",")}
            declared = values.pop()
            if values or not declared.isdigit() or (length is not None and int(declared) != length):
                raise httpcore.LocalProtocolError("bad or conflicting Content-Length")
            length = int(declared)
        lines.append(line)
    if len(hosts) != 1:
        raise httpcore.LocalProtocolError("a request needs exactly one Host header")
    if chunked:
        length = None
    elif length is None:
        length = 0
    start = b"%b %b HTTP/1.1\r\n" % (method, target)
    return b"".join([start, *hosts, *lines, b"\r\n"]), chunked, length


def _encoded(head: ResponseHead) -> bool:
    for name, value in head.headers:
        if name.lower() == b"content-encoding" and value.lower() not in (b"", b"identity"):
            return True
    return False


def _asks_close(request: httpcore.Request) -> bool:
    for name, value in request.headers:
        if name.lower() == b"connection" and b"close" in _tokens(value):
            return True
    return False


def _tokens(value: bytes) -> list[bytes]:
    return [part.strip() for part in value.lower().split(b",")]
