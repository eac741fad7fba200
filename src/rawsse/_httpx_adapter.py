"""What rawsse needs to know about httpx, in one place.

The sans-I/O ``StreamCore`` never builds an httpx object or walks httpx's
exception tree: the clients build their pools (with the sync pool's deadline-bound
reads) and timeouts here, and ``translate_error`` is handed to the core to turn
httpx's exceptions into rawsse's errors.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from ._asyncio_transport import AsyncioTransport
from ._body import ContentDecoder
from ._errors import (
    APIConnectionError,
    BodyError,
    ConnectTimeout,
    IncompleteStreamError,
    RawSSEError,
)
from ._recording import RecordingTransport
from ._timeouts import Timeouts

if TYPE_CHECKING:
    from ._base_client import StreamCore

__all__ = [
    "DEADLINE",
    "DEFAULT_LIMITS",
    "CappedBody",
    "abody_chunks",
    "aread_capped",
    "async_http_client",
    "body_chunks",
    "capped_body",
    "encoding_of",
    "httpx_timeout",
    "plain_timeout",
    "read_capped",
    "scrub",
    "ssl_context",
    "sync_http_client",
    "translate_error",
    "unwind",
    "with_body",
]

# Each stream holds one HTTP/1.1 connection for its whole life, so the pool must
# allow as many connections as concurrent streams: 1,000 streams through one
# AsyncClient need 1,000 connections.  2,048 leaves headroom while still bounding
# file descriptors; beyond it, new streams wait (up to ``Timeouts.connect``) for a
# free connection.  Idle connections kept for reuse are capped lower, since after
# a burst most of them would only hold file descriptors.
DEFAULT_LIMITS = httpx.Limits(
    max_connections=2048, max_keepalive_connections=256, keepalive_expiry=30.0
)


def httpx_timeout(timeouts: Timeouts, *, read: bool = True) -> httpx.Timeout:
    """httpx's limits for a stream: ``read`` is the idle clock, unless the shell's own
    deadline covers it (``read=False``: the async shell's cancel scope, which saves
    httpcore a second scope per read)."""
    t = timeouts
    return httpx.Timeout(
        connect=t.connect, read=t.idle if read else None, write=t.connect, pool=t.connect
    )


def plain_timeout(timeouts: Timeouts) -> httpx.Timeout:
    """httpx's limits for a non-streaming request: the whole answer within ``total``."""
    t = timeouts
    return httpx.Timeout(connect=t.connect, read=t.total, write=t.connect, pool=t.connect)


def scrub(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` (the API key) and its ``repr`` replaced by ``***``."""
    if not secret:
        return text
    for form in (secret, repr(secret)[1:-1]):
        text = text.replace(form, "***")
    return text


def translate_error(exc: Exception, core: StreamCore, now: float) -> RawSSEError | None:
    """The rawsse error for one of httpx's exceptions, or None when it is foreign.

    The one place a message is built from a lower layer's text, so the one place
    the key is scrubbed from it: h11 quotes a header it refuses, whole.
    """
    if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
        return ConnectTimeout(
            f"connecting took longer than {core.timeouts.connect} s ({type(exc).__name__})",
            timeout=core.timeouts.connect,
        )
    if isinstance(exc, httpx.TimeoutException):
        return core.timeout_error(now)
    if isinstance(exc, (httpx.TransportError, httpx.DecodingError)):
        detail = scrub(
            f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, core.secret
        )
        if isinstance(exc, httpx.DecodingError):
            return BodyError(f"the body could not be decoded ({detail})")
        if core.response_started:
            return IncompleteStreamError(f"the connection broke mid-stream ({detail})")
        return APIConnectionError(f"the request failed before a response ({detail})")
    return None


def encoding_of(response: httpx.Response) -> str:
    """The ``Content-Encoding`` rawsse must decode: none when httpx already read (and
    decoded) the body, as a ``MockTransport`` response with ``content=`` is."""
    return "" if response.is_stream_consumed else response.headers.get("content-encoding", "")


def body_chunks(response: httpx.Response) -> Iterator[bytes]:
    """The body as it came (``encoding_of`` says what decodes it)."""
    return response.iter_bytes() if response.is_stream_consumed else response.iter_raw()


def abody_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """``body_chunks`` for an async response."""
    return response.aiter_bytes() if response.is_stream_consumed else response.aiter_raw()


class CappedBody:
    """At most ``cap`` decoded bytes of one body (``cap + 1`` with ``strict``, so the
    caller can tell a longer body); the rest is never read.

    Without ``strict`` (error bodies), damaged or unknown encodings end the body
    quietly; ``overdue`` is asked after each read whether a deadline passed.
    """

    def __init__(
        self,
        response: httpx.Response,
        cap: int,
        *,
        inflation: float | None,
        strict: bool = False,
        overdue: Callable[[], RawSSEError | None] | None = None,
    ) -> None:
        try:
            self._content = ContentDecoder(encoding_of(response), inflation=inflation)
        except BodyError:
            if strict:
                raise
            self._content = ContentDecoder("", inflation=None)  # unknown: its raw bytes
        self._limit = cap + 1 if strict else cap
        self._strict = strict
        self._overdue = overdue
        self._out = bytearray()

    def full(self, raw: bytes) -> bool:
        """Take one read of the body; True once the cap is reached (read no more)."""
        content, out = self._content, self._out
        content.feed(raw)
        try:
            while len(out) < self._limit:
                piece = content.read(self._limit - len(out))
                if not piece:
                    break
                out += piece
            else:
                return True
        except BodyError:
            if self._strict:
                raise
            return True  # an error body keeps what decoded before the damage
        err = self._overdue() if self._overdue is not None else None
        if err is not None:
            raise err
        return False

    def body(self, *, ended: bool) -> bytes:
        """What was read; ``ended``: the body ended (its encoding is flushed)."""
        if ended:
            try:
                self._out += self._content.flush()
            except BodyError:
                if self._strict:
                    raise
        return bytes(self._out[: self._limit])


def capped_body(
    response: httpx.Response, core: StreamCore, now: Callable[[], float] | None = None
) -> CappedBody:
    """How much of ``response`` is read (``core.body_limits``): an error body, or with
    ``now`` (the shell's clock) a ``stream=False`` answer, bounded by ``total`` too."""
    limits = core.body_limits
    if now is None or not response.is_success:
        return CappedBody(response, limits.error_body, inflation=limits.inflation)
    return CappedBody(
        response,
        limits.completion_body,
        inflation=limits.inflation,
        strict=True,
        overdue=lambda: core.total_overdue(now()),
    )


def read_capped(
    response: httpx.Response, core: StreamCore, now: Callable[[], float] | None = None
) -> bytes:
    """The body of ``response`` as ``capped_body`` bounds it."""
    capped = capped_body(response, core, now)
    for raw in body_chunks(response):
        if capped.full(raw):
            return capped.body(ended=False)
    return capped.body(ended=True)


async def unwind(raw: AsyncIterator[bytes]) -> None:
    """Finish httpx's stack of body generators by resuming it in a cancelled scope.

    ``aclose()`` on the outer generator would leave the inner ones (httpx's and
    httpcore's own) suspended for the garbage collector, which trio reports as a
    ResourceWarning.  Resumed under cancellation, the innermost read raises and
    every layer ends, closing the connection on its way out.
    """
    if not inspect.isasyncgen(raw):  # a plain reader leaves nothing suspended
        return
    with anyio.CancelScope() as scope:
        scope.cancel()
        for _ in range(100_000):  # each turn consumes one chunk already buffered
            try:
                await raw.__anext__()
            except BaseException:  # noqa: PERF203 - ending the generators is the point
                return


async def aread_capped(
    response: httpx.Response, core: StreamCore, now: Callable[[], float] | None = None
) -> bytes:
    """``read_capped`` for an async response."""
    capped = capped_body(response, core, now)
    chunks = abody_chunks(response)
    try:
        async for raw in chunks:
            if capped.full(raw):
                return capped.body(ended=False)
        return capped.body(ended=True)
    finally:
        with anyio.CancelScope(shield=True):
            await unwind(chunks)


# The deadline (``time.monotonic``) of the sync stream reading on this thread.
DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "rawsse_deadline", default=None
)


class _DeadlineNetworkStream:
    """An httpcore network stream whose reads end at the current stream's deadline.

    httpcore fixes the read timeout when a response starts; this wrapper shortens
    each read to the deadline of the clock that expires first (first token, stall,
    total), so a blocking sync read stops in time with no watchdog thread.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        deadline = DEADLINE.get()
        if deadline is not None:
            remaining = max(deadline - time.monotonic(), 1e-6)
            if timeout is None or remaining < timeout:
                timeout = remaining
        data: bytes = self._stream.read(max_bytes, timeout)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, *args: Any, **kwargs: Any) -> _DeadlineNetworkStream:
        return _DeadlineNetworkStream(self._stream.start_tls(*args, **kwargs))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend:
    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def connect_tcp(self, *args: Any, **kwargs: Any) -> _DeadlineNetworkStream:
        return _DeadlineNetworkStream(self._backend.connect_tcp(*args, **kwargs))

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> _DeadlineNetworkStream:
        return _DeadlineNetworkStream(self._backend.connect_unix_socket(*args, **kwargs))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


@functools.lru_cache(maxsize=1)
def ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes tens of milliseconds; every client can share one.
    return httpx.create_ssl_context()


def _install_deadlines(transport: httpx.HTTPTransport) -> bool:
    # httpx offers no public hook for the network backend of its pool; the pool is
    # ours (we built the transport), and a changed httpx only loses the precise
    # deadlines: the clocks are then checked as bytes arrive.
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if backend is None:
        return False
    pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]
    return True


def sync_http_client(record_to: str | Path | None, limits: httpx.Limits) -> httpx.Client:
    """The sync client's own pool: reads bounded by the stream's deadline, optionally recorded."""
    transport = httpx.HTTPTransport(limits=limits, verify=ssl_context())
    _install_deadlines(transport)
    inner: httpx.BaseTransport = transport
    if record_to is not None:
        inner = RecordingTransport(transport, record_to)
    return httpx.Client(transport=inner, timeout=None, verify=ssl_context())


def async_http_client(record_to: str | Path | None, limits: httpx.Limits) -> httpx.AsyncClient:
    """The async client's own pool (``AsyncioTransport``: on asyncio its reads end at
    the stream's deadlines; under trio they are cancel scopes), optionally recorded."""
    transport = AsyncioTransport(limits=limits, ssl_context=ssl_context())
    inner: httpx.AsyncBaseTransport = transport
    if record_to is not None:
        inner = RecordingTransport(transport, record_to)
    return httpx.AsyncClient(transport=inner, timeout=None, verify=ssl_context())


def with_body(request: httpx.Request, body: bytes) -> httpx.Request:
    """``request`` with another body (a continuation): same method, URL, headers and
    timeouts; the length is the new body's."""
    headers = httpx.Headers(request.headers)
    headers.pop("content-length", None)
    return httpx.Request(
        request.method, request.url, headers=headers, content=body, extensions=request.extensions
    )
