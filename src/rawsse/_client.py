"""``Client``/``Stream`` and ``AsyncClient``/``AsyncStream``: the thin I/O shells.

All decisions live in ``_base_client``; these classes move bytes, sleep between
retries and enforce deadlines: the async shell with one anyio cancel scope per
read (asyncio and trio), the sync shell without threads, by bounding every
socket read of its own connection pool by the stream's next deadline.
"""

from __future__ import annotations

import contextvars
import functools
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import anyio
import httpx

from ._accumulate import ChatResult
from ._base_client import BaseClient, GiveUp, InBandErrorMode, StreamCore
from ._chat_events import ChatEvent, TextDelta
from ._completion import result_from_completion
from ._constants import DEFAULT_BASE_URL
from ._httpx_adapter import DEFAULT_LIMITS, httpx_timeout, plain_timeout
from ._metrics import StreamMetrics
from ._recording import RecordingTransport
from ._timeouts import Timeouts

__all__ = ["AsyncClient", "AsyncStream", "Client", "Stream"]

# The deadline (``time.monotonic``) of the sync stream reading on this thread.
_Transport = TypeVar("_Transport", httpx.BaseTransport, httpx.AsyncBaseTransport)

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
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
        deadline = _DEADLINE.get()
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
def _ssl_context() -> ssl.SSLContext:
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


def _recording_transport(transport: _Transport, record_to: str | Path | None) -> _Transport:
    if record_to is None:
        return transport
    return RecordingTransport(transport, record_to)


class Client(BaseClient):
    """A synchronous client for OpenRouter or any OpenAI-compatible endpoint.

    ``api_key`` defaults to ``$OPENROUTER_API_KEY`` (required only by OpenRouter's
    own URL); ``timeout`` is a ``Timeouts``; ``retries`` counts retries before the
    first content event; ``http_client`` brings your own ``httpx.Client`` (the
    first-token, stall and total limits are then checked as bytes arrive, the idle
    limit by httpx's read timeout); ``record_to`` records each exchange as a
    cassette in that directory.
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
        http_client: httpx.Client | None = None,
        headers: Mapping[str, str] | None = None,
        in_band_error: InBandErrorMode = "raise",
        on_metrics: Callable[[StreamMetrics], object] | None = None,
        retry_delay: float = 0.5,
        max_retry_delay: float = 8.0,
        record_to: str | Path | None = None,
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
        )
        self._owns_http = http_client is None
        if http_client is None:
            transport = httpx.HTTPTransport(limits=DEFAULT_LIMITS, verify=_ssl_context())
            _install_deadlines(transport)
            http_client = httpx.Client(
                transport=_recording_transport(transport, record_to),
                timeout=None,
                verify=_ssl_context(),
            )
        elif record_to is not None:
            raise ValueError("record_to cannot wrap a caller's http_client; record with yours")
        self._http = http_client

    def stream(
        self,
        *,
        model: str,
        messages: Any,
        timeout: Timeouts | None = None,
        in_band_error: InBandErrorMode | None = None,
        retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> Stream:
        """A stream of typed chat events; use it as a context manager.

        ``params`` go into the request body (tools, reasoning, provider, models,
        max_tokens, ...); ``stream_options.include_usage`` is on unless set.
        """
        core = self._core(time.monotonic(), timeout, in_band_error, retries)
        request = self._http.build_request(
            "POST",
            self._url,
            content=self._body(model, messages, params, stream=True),
            headers=self._request_headers(extra_headers, stream=True),
            timeout=httpx_timeout(core.timeouts),
        )
        return Stream(self._http, request, core)

    def complete(
        self,
        *,
        model: str,
        messages: Any,
        stream: bool = True,
        timeout: Timeouts | None = None,
        in_band_error: InBandErrorMode | None = None,
        retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> ChatResult:
        """The whole answer as a ``ChatResult``.

        Streams under the hood (with every stream protection) unless
        ``stream=False``, which sends one plain request (for batch work).
        """
        if not stream:
            return self._complete_plain(model, messages, timeout, retries, extra_headers, params)
        with self.stream(
            model=model,
            messages=messages,
            timeout=timeout,
            in_band_error=in_band_error,
            retries=retries,
            extra_headers=extra_headers,
            **params,
        ) as s:
            return s.final()

    def _complete_plain(
        self,
        model: str,
        messages: Any,
        timeout: Timeouts | None,
        retries: int | None,
        extra_headers: Mapping[str, str] | None,
        params: dict[str, Any],
    ) -> ChatResult:
        core = self._core(time.monotonic(), timeout, None, retries)
        t = core.timeouts
        request = self._http.build_request(
            "POST",
            self._url,
            content=self._body(model, messages, params, stream=False),
            headers=self._request_headers(extra_headers, stream=False),
            timeout=plain_timeout(t),
        )
        while True:
            core.begin_attempt(time.monotonic())
            try:
                response = self._http.send(request)
                if response.is_success:
                    return result_from_completion(
                        response.status_code, response.headers, response.content
                    )
                raise core.head_error(response.status_code, response.headers, response.content)
            except Exception as exc:
                decision = core.decide(exc, time.monotonic(), finish=False)
                if isinstance(decision, GiveUp):
                    raise decision.error from decision.cause
                time.sleep(decision.delay)

    def close(self) -> None:
        """Close the connection pool (only when the client created it)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Stream:
    """One streaming response: iterate it for ``ChatEvent``s.

    Iterating raises rawsse's errors where they happen, after every event before
    them.  ``break`` (or leaving the ``with`` block, or ``close()``) closes the
    connection at once and marks the result ``cancelled``.
    """

    def __init__(self, http: httpx.Client, request: httpx.Request, core: StreamCore) -> None:
        self._http = http
        self._request = request
        self._core = core
        self._response: httpx.Response | None = None  # open, being read
        self._last_response: httpx.Response | None = None  # kept for status and headers
        self._raw: Iterator[bytes] | None = None
        self._opened = False

    # -- public ---------------------------------------------------------------

    def __enter__(self) -> Stream:
        self._open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[ChatEvent]:
        self._open()
        try:
            while True:
                events = self._next_batch()
                if events is None:
                    return
                yield from events
        finally:
            # ``break`` closes this generator: stop the download now.
            if not self._core.finished:
                self.close()

    @property
    def text_stream(self) -> Iterator[str]:
        """Only the text fragments of choice 0."""
        return (e.text for e in self if type(e) is TextDelta and e.index == 0)

    def final(self) -> ChatResult:
        """Read what is left and return the ``ChatResult`` (again, if already read)."""
        for _ in self:
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
        return self._core.metrics(time.monotonic())

    @property
    def response(self) -> httpx.Response | None:
        """The HTTP response of the current attempt (status, headers)."""
        return self._last_response

    def close(self) -> None:
        """Stop: close the connection and mark an unfinished result ``cancelled``."""
        self._core.cancel(time.monotonic())
        self._close_response()

    # -- shell ----------------------------------------------------------------

    def _open(self) -> None:
        if not self._opened:
            self._opened = True
            self._connect()

    def _close_response(self) -> None:
        _DEADLINE.set(None)
        response, raw, self._response, self._raw = self._response, self._raw, None, None
        if raw is not None:
            raw.close()  # type: ignore[attr-defined]
        if response is not None:
            response.close()

    def _connect(self) -> None:
        core = self._core
        while True:
            core.begin_attempt(time.monotonic())
            try:
                _DEADLINE.set(core.clocks.deadline())
                response = self._http.send(self._request, stream=True)
                self._response = self._last_response = response
                if core.check_head(response.status_code, response.headers):
                    self._raw = response.iter_bytes()
                    return
                body = response.read()
                self._close_response()
                raise core.head_error(response.status_code, response.headers, body)
            except BaseException as exc:
                self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        """Handle a failure: return to retry (after the backoff) or raise."""
        core = self._core
        now = time.monotonic()
        self._close_response()
        decision = core.decide(exc, now)
        if isinstance(decision, GiveUp):
            raise decision.error from decision.cause
        time.sleep(decision.delay)

    def _next_batch(self) -> list[ChatEvent] | None:
        core = self._core
        while True:
            if core.pending is not None:
                raise core.take_pending()
            if core.finished:
                if core.error is not None:
                    raise core.error
                return None
            if self._raw is None:
                self._connect()
                continue
            core.clocks.read_start = time.monotonic()
            deadline = core.clocks.deadline()
            try:
                _DEADLINE.set(deadline)
                chunk = next(self._raw, None)
                now = time.monotonic()
                if deadline is not None and now >= deadline and core.clocks.expired(now):
                    # Without our pool (a caller's http_client) reads are not cut at the
                    # deadline; keep-alives still end them, and the clock is checked here.
                    raise core.timeout_error(now)
            except BaseException as exc:
                self._failed(exc)
                continue
            if chunk is None:
                events = core.end_of_body(now)
                self._close_response()
                return events
            events = core.feed(chunk, now)
            if core.finished:
                self._close_response()
            return events


class AsyncClient(BaseClient):
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
        )
        self._owns_http = http_client is None
        if http_client is None:
            transport = httpx.AsyncHTTPTransport(limits=DEFAULT_LIMITS, verify=_ssl_context())
            http_client = httpx.AsyncClient(
                transport=_recording_transport(transport, record_to),
                timeout=None,
                verify=_ssl_context(),
            )
        elif record_to is not None:
            raise ValueError("record_to cannot wrap a caller's http_client; record with yours")
        self._http = http_client

    def stream(
        self,
        *,
        model: str,
        messages: Any,
        timeout: Timeouts | None = None,
        in_band_error: InBandErrorMode | None = None,
        retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> AsyncStream:
        """A stream of typed chat events; use it with ``async with``."""
        core = self._core(anyio.current_time(), timeout, in_band_error, retries)
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
        core = self._core(anyio.current_time(), timeout, None, retries)
        t = core.timeouts
        request = self._http.build_request(
            "POST",
            self._url,
            content=self._body(model, messages, params, stream=False),
            headers=self._request_headers(extra_headers, stream=False),
            timeout=plain_timeout(t),
        )
        while True:
            core.begin_attempt(anyio.current_time())
            try:
                response = await self._http.send(request)
                if response.is_success:
                    return result_from_completion(
                        response.status_code, response.headers, response.content
                    )
                raise core.head_error(response.status_code, response.headers, response.content)
            except Exception as exc:
                decision = core.decide(exc, anyio.current_time(), finish=False)
                if isinstance(decision, GiveUp):
                    raise decision.error from decision.cause
                await anyio.sleep(decision.delay)

    async def aclose(self) -> None:
        """Close the connection pool (only when the client created it)."""
        if self._owns_http:
            await self._http.aclose()

    close = aclose

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncStream:
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

    # -- public ---------------------------------------------------------------

    async def __aenter__(self) -> AsyncStream:
        await self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

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
                await _unwind(raw)
            await response.aclose()

    async def _connect(self) -> None:
        core = self._core
        while True:
            core.begin_attempt(anyio.current_time())
            try:
                response = await self._bounded(self._http.send(self._request, stream=True))
                self._response = self._last_response = response
                if core.check_head(response.status_code, response.headers):
                    self._raw = response.aiter_bytes()
                    return
                body = await self._bounded(response.aread())
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
                raise core.take_pending()
            if core.finished:
                if core.error is not None:
                    raise core.error
                return None
            raw = self._raw
            if raw is None:
                await self._connect()
                continue
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


async def _unwind(raw: AsyncIterator[bytes]) -> None:
    """Finish httpx's stack of body generators by resuming it in a cancelled scope.

    ``aclose()`` on the outer generator would leave the inner ones (httpx's and
    httpcore's own) suspended for the garbage collector, which trio reports as a
    ResourceWarning.  Resumed under cancellation, the innermost read raises and
    every layer ends, closing the connection on its way out.
    """
    with anyio.CancelScope() as scope:
        scope.cancel()
        for _ in range(100_000):  # each turn consumes one chunk h11 already buffered
            try:
                await raw.__anext__()
            except BaseException:  # noqa: PERF203 - ending the generators is the point
                return


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
