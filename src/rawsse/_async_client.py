"""``AsyncClient``/``AsyncStream``: the thin async I/O shell, on asyncio and trio.

The twin of ``_client``: all decisions live in ``_base_client``, the settings and
requests in ``_client_config``; these classes send, read, sleep between retries
and close, and enforce deadlines per read: on the client's own pool on asyncio
the read ends at the deadline itself (``READ_DEADLINE``), elsewhere one anyio
cancel scope bounds it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from time import monotonic
from typing import Any

import anyio
import anyio.lowlevel
import httpx

from ._accumulate import ChatResult
from ._asyncio_transport import (
    READ_DEADLINE,
    ReadDeadline,
    backend_clock,
    body_reader,
    honours_read_deadline,
)
from ._base_client import StreamCore
from ._chat_events import ChatEvent, TextDelta
from ._client_config import BaseClient, Call
from ._closing import AsyncClosesOnExit
from ._httpx_adapter import abody_chunks, aread_capped, async_http_client, unwind
from ._stream_shell import StreamShell

__all__ = ["AsyncClient", "AsyncStream"]

_Result = Coroutine[Any, Any, ChatResult]


_CLOSED_BODY = httpx.ByteStream(b"")


class AsyncStream(AsyncClosesOnExit, StreamShell[httpx.AsyncClient, AsyncIterator[bytes]]):
    """One streaming response: ``async for`` it for ``ChatEvent``s (see ``Stream``).

    Leaving the ``async with`` block, ``await close()``, task cancellation or a
    timeout closes the connection at once.
    """

    def __init__(self, http: httpx.AsyncClient, request: httpx.Request, core: StreamCore) -> None:
        super().__init__(http, request, core)
        self._batch: list[ChatEvent] = []
        self._pos = 0
        self._read_deadline = False
        """The body's reads end at ``READ_DEADLINE`` by themselves (``AsyncioTransport``)."""
        self._limit: float | None = None
        """``total``/``first_token``/``stall`` checked between the events of a batch
        (in ``time.monotonic``)."""

    # -- public ---------------------------------------------------------------

    async def __aenter__(self) -> AsyncStream:
        await self._open()
        return self

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> ChatEvent:
        batch = self._batch
        pos = self._pos
        while pos >= len(batch):
            await self._open()
            next_batch = await self._next_batch()
            if next_batch is None:
                raise StopAsyncIteration
            self._batch = batch = next_batch
            pos = 0
            core = self._core
            limit = None if core.finished else core.clocks.event_deadline()
            # On ``time.monotonic``'s scale: it runs at the event loop clock's rate and
            # costs a tenth of ``anyio.current_time()``, on every event.
            self._limit = None if limit is None else limit - self._now() + monotonic()
        limit = self._limit
        if limit is not None and monotonic() >= limit:
            # A slow consumer: the deadlines hold between the events of one read.
            err = self._core.overdue(self._now())
            if err is not None:
                self._batch, self._pos = [], 0
                await self._close_response()
                raise err
        self._pos = pos + 1
        return batch[pos]

    @property
    def text_stream(self) -> AsyncIterator[str]:
        """Only the text fragments of choice 0."""
        return _AsyncTexts(self)

    async def final(self) -> ChatResult:
        """Read what is left and return the ``ChatResult`` (again, if already read)."""
        async for _ in self:
            pass
        return self._core.outcome()

    async def close(self) -> None:
        """Stop: close the connection and mark an unfinished result ``cancelled``."""
        self._core.cancel(self._now())
        await self._close_response()

    aclose = close

    # -- shell ----------------------------------------------------------------

    _now = staticmethod(anyio.current_time)

    async def _open(self) -> None:
        if not self._opened:
            self._opened = True
            # The backend's own clock (what ``anyio.current_time`` reads, without
            # asking which backend runs, several times per event).
            self._now = backend_clock()
            await self._connect()

    async def _close_response(self) -> None:
        response, raw, self._response, self._raw = self._response, self._raw, None, None
        if response is None:
            return
        # Shielded: closing must finish even while the task is being cancelled.
        with anyio.CancelScope(shield=True):
            if raw is not None:
                await unwind(raw)
            await response.aclose()
        # httpx's streaming response and its stream refer to each other: cut the cycle,
        # so the closed connection's objects are freed now, not by the cyclic
        # collector (with thousands of streams, several KiB each for a while).
        response.stream = _CLOSED_BODY

    async def _connect(self) -> None:
        while True:
            request = self._attempt()
            try:
                response = await self._bounded(self._http.send(request, stream=True))
                if self._is_stream(response):
                    # Decoded by the core, step by step; read without httpx's layers
                    # when the client's own transport made the response.
                    self._raw = body_reader(response) or abody_chunks(response)
                    self._read_deadline = honours_read_deadline(response)
                    return
                body = await self._bounded(aread_capped(response, self._core))
                raise self._head_error(response, body)
            except BaseException as exc:
                await self._failed(exc)

    async def _bounded(self, awaitable: Any) -> Any:
        deadline = self._core.clocks.deadline()
        if deadline is None:
            return await awaitable
        with anyio.CancelScope(deadline=deadline) as scope:
            return await awaitable
        assert scope.cancelled_caught
        raise self._core.timeout_error(self._now())

    async def _failed(self, exc: BaseException) -> None:
        await self._close_response()
        await anyio.sleep(self._core.backoff(exc, self._now()))

    async def _next_batch(self) -> list[ChatEvent] | None:
        core = self._core
        while True:
            if core.pending is not None:
                await self._failed(core.take_pending())
            elif core.announce or core.finished:
                return core.take_ready()
            elif self._raw is None:
                await self._connect()
            else:
                events = await self._read(self._raw)
                if events is not None:
                    return events

    async def _read(self, raw: AsyncIterator[bytes]) -> list[ChatEvent] | None:
        """The events of one read (of the ``backlog`` first); None after a failure."""
        core = self._core
        chunk: bytes | None = b""
        if core.backlog:
            await anyio.lowlevel.checkpoint()  # a long inflation yields to other tasks
        else:
            try:
                chunk = await self._next_chunk(raw, core.read_deadline(self._now()))
            except BaseException as exc:
                if not core.ends_body(exc):
                    await self._failed(exc)
                    return None
                chunk = None
        events = core.take(chunk, self._now())
        if chunk is None or core.finished:  # the body ended, or the stream did
            await self._close_response()
        return events

    async def _next_chunk(self, raw: AsyncIterator[bytes], deadline: float | None) -> bytes | None:
        """The next read of the body by ``deadline`` (None at its end)."""
        try:
            if deadline is None:
                return await raw.__anext__()
            if self._read_deadline:  # the read itself ends at the deadline: no scope
                token = READ_DEADLINE.set(deadline)
                try:
                    return await raw.__anext__()
                except ReadDeadline:
                    pass
                finally:
                    READ_DEADLINE.reset(token)
            else:
                with anyio.CancelScope(deadline=deadline):
                    return await raw.__anext__()
        except StopAsyncIteration:
            return None
        raise self._core.timeout_error(self._now())

    # -- a second shell around the same core (the relay reads the body its own way) --

    @property
    def shell_core(self) -> StreamCore:
        """The sans-I/O state of this stream, for a shell that reads the body itself
        (``shell_open``) and decodes it with this core: results, errors and
        timeouts stay the client's."""
        return self._core

    async def shell_open(self) -> AsyncIterator[bytes] | None:
        """Open the stream (connecting, retries and HTTP errors as ``async with``
        does) and return its undecoded body chunks (None: the body already ended)."""
        await self._open()
        return self._raw

    async def shell_next(self) -> list[ChatEvent] | None:
        """The next decoded batch, reconnecting and continuing as iteration does
        (None: the end); for a shell that leaves the reading to the stream."""
        await self._open()
        return await self._next_batch()

    async def shell_release(self) -> None:
        """Close the response only: the shell decides how the result ends."""
        await self._close_response()


class AsyncClient(AsyncClosesOnExit, BaseClient[httpx.AsyncClient, AsyncStream, _Result]):
    """The asynchronous client (asyncio or trio); see ``Client`` for the arguments.

    ``http_client`` brings your own ``httpx.AsyncClient``; every limit still
    applies (the deadlines are anyio cancel scopes).  The client's own pool (lean
    reads on asyncio) allows 2,048 connections, since each open stream holds one
    for its whole life (1,000 concurrent streams through one client need 1,000),
    and keeps 256 idle ones; ``limits`` changes both.
    """

    _idle_read = False  # a cancel scope per read saves httpcore a second one

    async def aclose(self) -> None:
        """Close the connection pool (only when the client created it)."""
        if self._owns_http:
            await self._http.aclose()

    close = aclose

    async def __aenter__(self) -> AsyncClient:
        return self

    # -- shell ----------------------------------------------------------------

    _now = staticmethod(anyio.current_time)
    _new_http = staticmethod(async_http_client)
    _stream_type = AsyncStream

    async def _complete(self, call: Call, stream: bool) -> ChatResult:
        core, request = self._prepare(call, stream)
        if not stream:
            return await self._plain(core, request)
        async with AsyncStream(self._http, request, core) as opened:
            return await opened.final()

    async def _plain(self, core: StreamCore, request: httpx.Request) -> ChatResult:
        try:
            while True:
                core.begin_attempt(anyio.current_time())
                try:
                    response = await self._http.send(request, stream=True)
                    try:
                        body = await aread_capped(response, core, anyio.current_time)
                    finally:
                        with anyio.CancelScope(shield=True):
                            await response.aclose()
                    now = anyio.current_time()
                    return core.plain_result(response.status_code, response.headers, body, now)
                except Exception as exc:
                    await anyio.sleep(core.backoff(exc, anyio.current_time(), finish=False))
        except BaseException as exc:
            core.plain_end(anyio.current_time(), error=exc)  # observers hear of the failure too
            raise


class _AsyncTexts:
    # A class, not an async generator: nothing is left for the garbage collector
    # to finalize when the caller stops early.
    def __init__(self, stream: AsyncStream) -> None:
        self._stream = stream

    def __aiter__(self) -> _AsyncTexts:
        return self

    async def __anext__(self) -> str:
        while True:
            event = await self._stream.__anext__()
            if type(event) is TextDelta and event.index == 0:
                return event.text
