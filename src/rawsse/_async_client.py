"""``AsyncClient``/``AsyncStream``: the thin async I/O shell, on asyncio and trio.

The twin of ``_client``: all decisions live in ``_base_client``; these classes
move bytes, sleep between retries, raise, and enforce deadlines with one anyio
cancel scope per read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from time import monotonic
from typing import Any

import anyio
import anyio.lowlevel
import httpx

from ._accumulate import ChatResult
from ._base_client import GiveUp, InBandErrorMode, StreamCore
from ._body import BodyLimits
from ._chat_events import ChatEvent, TextDelta
from ._client_config import BaseClient, ResumeArg
from ._closing import AsyncClosesOnExit
from ._constants import DEFAULT_BASE_URL
from ._httpx_adapter import (
    abody_chunks,
    aread_capped,
    async_http_client,
    encoding_of,
    httpx_timeout,
    plain_timeout,
    unwind,
    with_body,
)
from ._metrics import StreamMetrics
from ._timeouts import Timeouts

__all__ = ["AsyncClient", "AsyncStream"]


class AsyncClient(AsyncClosesOnExit, BaseClient):
    """The asynchronous client (asyncio or trio); see ``Client`` for the arguments.

    ``http_client`` brings your own ``httpx.AsyncClient``; every limit still
    applies (the deadlines are anyio cancel scopes).  The default pool allows
    2,048 connections, since each open stream holds one for its whole life (1,000
    concurrent streams through one client need 1,000), and keeps 256 idle ones.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        app_url: str | None = None,
        app_title: str | None = None,
        timeout: Timeouts | None = None,
        retries: int = 2,
        http_client: httpx.AsyncClient | None = None,
        headers: Mapping[str, str] | None = None,
        in_band_error: InBandErrorMode = "raise",
        on_metrics: Callable[[StreamMetrics], object] | None = None,
        retry_delay: float = 0.5,
        max_retry_delay: float = 8.0,
        record_to: str | Path | None = None,
        resume: ResumeArg = None,
        body_limits: BodyLimits | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            app_url=app_url,
            app_title=app_title,
            timeout=timeout,
            retries=retries,
            headers=headers,
            in_band_error=in_band_error,
            on_metrics=on_metrics,
            retry_delay=retry_delay,
            max_retry_delay=max_retry_delay,
            resume=resume,
            body_limits=body_limits,
        )
        self._owns_http = http_client is None
        if not self._owns_http and record_to is not None:
            raise ValueError("record_to cannot wrap a caller's http_client; record with yours")
        self._http = http_client if http_client is not None else async_http_client(record_to)

    def stream(
        self,
        *,
        model: str,
        messages: Any,
        timeout: Timeouts | None = None,
        in_band_error: InBandErrorMode | None = None,
        retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        resume: ResumeArg = None,
        **params: Any,
    ) -> AsyncStream:
        """A stream of typed chat events; use it with ``async with``."""
        core = self._core(
            anyio.current_time(),
            timeout,
            in_band_error,
            retries,
            resume=resume,
            model=model,
            messages=messages,
            params=params,
        )
        request = self._http.build_request(
            "POST",
            self._url,
            content=self._body(model, messages, params, stream=True),
            headers=self._request_headers(extra_headers, stream=True),
            timeout=httpx_timeout(core.timeouts, read=False),
        )
        return AsyncStream(self._http, request, core)

    async def complete(
        self,
        *,
        model: str,
        messages: Any,
        stream: bool = True,
        timeout: Timeouts | None = None,  # noqa: ASYNC109 - a Timeouts policy, not a deadline
        in_band_error: InBandErrorMode | None = None,
        retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        resume: ResumeArg = None,
        **params: Any,
    ) -> ChatResult:
        """The whole answer as a ``ChatResult`` (see ``Client.complete``)."""
        if not stream:
            return await self._complete_plain(
                model, messages, timeout, retries, extra_headers, params
            )
        async with self.stream(
            model=model,
            messages=messages,
            timeout=timeout,
            in_band_error=in_band_error,
            retries=retries,
            extra_headers=extra_headers,
            resume=resume,
            **params,
        ) as s:
            return await s.final()

    async def _complete_plain(
        self,
        model: str,
        messages: Any,
        timeout: Timeouts | None,  # noqa: ASYNC109
        retries: int | None,
        extra_headers: Mapping[str, str] | None,
        params: dict[str, Any],
    ) -> ChatResult:
        core = self._core(
            anyio.current_time(),
            timeout,
            None,
            retries,
            model=model,
            messages=messages,
            params=params,
            stream=False,
        )
        t = core.timeouts
        request = self._http.build_request(
            "POST",
            self._url,
            content=self._body(model, messages, params, stream=False),
            headers=self._request_headers(extra_headers, stream=False),
            timeout=plain_timeout(t),
        )
        try:
            while True:
                core.begin_attempt(anyio.current_time())
                try:
                    response = await self._http.send(request, stream=True)
                    try:
                        limits = core.body_limits
                        if response.is_success:
                            body = await aread_capped(
                                response,
                                limits.completion_body,
                                inflation=limits.inflation,
                                strict=True,
                                overdue=lambda: core.total_overdue(anyio.current_time()),
                            )
                            result = core.plain_result(response.status_code, response.headers, body)
                            core.plain_end(anyio.current_time(), result)
                            return result
                        body = await aread_capped(
                            response, limits.error_body, inflation=limits.inflation
                        )
                    finally:
                        with anyio.CancelScope(shield=True):
                            await response.aclose()
                    raise core.head_error(response.status_code, response.headers, body)
                except Exception as exc:
                    decision = core.decide(exc, anyio.current_time(), finish=False)
                    if isinstance(decision, GiveUp):
                        raise decision.error from decision.cause
                    await anyio.sleep(decision.delay)
        except BaseException as exc:
            core.plain_end(anyio.current_time(), error=exc)  # observers hear of the failure too
            raise

    async def aclose(self) -> None:
        """Close the connection pool (only when the client created it)."""
        if self._owns_http:
            await self._http.aclose()

    close = aclose

    async def __aenter__(self) -> AsyncClient:
        return self


class AsyncStream(AsyncClosesOnExit):
    """One streaming response: ``async for`` it for ``ChatEvent``s (see ``Stream``).

    Leaving the ``async with`` block, ``await close()``, task cancellation or a
    timeout closes the connection at once.
    """

    def __init__(self, http: httpx.AsyncClient, request: httpx.Request, core: StreamCore) -> None:
        self._http = http
        self._request = request
        self._core = core
        self._response: httpx.Response | None = None  # open, being read
        self._last_response: httpx.Response | None = None  # kept for status and headers
        self._raw: AsyncIterator[bytes] | None = None
        self._opened = False
        self._batch: list[ChatEvent] = []
        self._pos = 0
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
            self._limit = None if limit is None else limit - anyio.current_time() + monotonic()
        limit = self._limit
        if limit is not None and monotonic() >= limit:
            # A slow consumer: the deadlines hold between the events of one read.
            err = self._core.overdue(anyio.current_time())
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
        if self._core.error is not None:
            raise self._core.error
        return self._core.result

    @property
    def result(self) -> ChatResult:
        """The result so far (final once the stream ended)."""
        return self._core.result

    @property
    def metrics(self) -> StreamMetrics:
        return self._core.metrics(anyio.current_time())

    @property
    def response(self) -> httpx.Response | None:
        """The HTTP response of the current attempt (status, headers)."""
        return self._last_response

    async def close(self) -> None:
        """Stop: close the connection and mark an unfinished result ``cancelled``."""
        self._core.cancel(anyio.current_time())
        await self._close_response()

    aclose = close

    # -- shell ----------------------------------------------------------------

    async def _open(self) -> None:
        if not self._opened:
            self._opened = True
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

    async def _connect(self) -> None:
        core = self._core
        while True:
            core.begin_attempt(anyio.current_time())
            body = core.take_body()
            if body is not None:  # a continuation (see ``Resume``)
                self._request = with_body(self._request, body)
            try:
                response = await self._bounded(self._http.send(self._request, stream=True))
                self._response = self._last_response = response
                if core.check_head(response.status_code, response.headers, encoding_of(response)):
                    self._raw = abody_chunks(response)  # decoded by the core, step by step
                    return
                limits = core.body_limits
                body = await self._bounded(
                    aread_capped(response, limits.error_body, inflation=limits.inflation)
                )
                await self._close_response()
                raise core.head_error(response.status_code, response.headers, body)
            except BaseException as exc:
                await self._failed(exc)

    async def _bounded(self, awaitable: Any) -> Any:
        deadline = self._core.clocks.deadline()
        if deadline is None:
            return await awaitable
        with anyio.CancelScope(deadline=deadline) as scope:
            return await awaitable
        assert scope.cancelled_caught
        raise self._core.timeout_error(anyio.current_time())

    async def _failed(self, exc: BaseException) -> None:
        core = self._core
        now = anyio.current_time()
        await self._close_response()
        decision = core.decide(exc, now)
        if isinstance(decision, GiveUp):
            raise decision.error from decision.cause
        await anyio.sleep(decision.delay)

    async def _next_batch(self) -> list[ChatEvent] | None:
        core = self._core
        while True:
            if core.pending is not None:
                await self._failed(core.take_pending())
                continue
            if core.announce:
                return core.take_announce()
            if core.finished:
                if core.error is not None:
                    raise core.error
                return None
            raw = self._raw
            if raw is None:
                await self._connect()
                continue
            if core.backlog:
                await anyio.lowlevel.checkpoint()  # a long inflation yields to other tasks
                events = core.feed(b"", anyio.current_time())
                if core.finished:
                    await self._close_response()
                return events
            core.clocks.read_start = anyio.current_time()
            deadline = core.clocks.deadline()
            try:
                if deadline is None:
                    chunk = await raw.__anext__()
                else:
                    chunk = None
                    with anyio.CancelScope(deadline=deadline):
                        chunk = await raw.__anext__()
                    if chunk is None:
                        raise core.timeout_error(anyio.current_time())
            except StopAsyncIteration:
                events = core.end_of_body(anyio.current_time())
                await self._close_response()
                return events
            except BaseException as exc:
                await self._failed(exc)
                continue
            assert chunk is not None
            events = core.feed(chunk, anyio.current_time())
            if core.finished:
                await self._close_response()
            return events

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
