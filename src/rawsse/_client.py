"""``Client``/``Stream``: the thin sync I/O shell (``_async_client`` is its twin).

All decisions live in ``_base_client``; these classes move bytes, sleep between
retries, raise, and enforce deadlines without threads, by bounding every socket
read of their own connection pool by the stream's next deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from ._accumulate import ChatResult
from ._base_client import GiveUp, InBandErrorMode, StreamCore
from ._body import BodyLimits
from ._chat_events import ChatEvent, TextDelta
from ._client_config import BaseClient, ResumeArg
from ._closing import ClosesOnExit
from ._constants import DEFAULT_BASE_URL
from ._httpx_adapter import (
    DEADLINE,
    body_chunks,
    encoding_of,
    httpx_timeout,
    plain_timeout,
    read_capped,
    sync_http_client,
    with_body,
)
from ._metrics import StreamMetrics
from ._timeouts import Timeouts

__all__ = ["Client", "Stream"]


class Client(ClosesOnExit, BaseClient):
    """A synchronous client for OpenRouter or any OpenAI-compatible endpoint.

    ``api_key`` defaults to ``$OPENROUTER_API_KEY`` (required only by OpenRouter's
    own URL); ``timeout`` is a ``Timeouts``; ``retries`` counts retries before the
    first content event; ``http_client`` brings your own ``httpx.Client`` (the
    first-token, stall and total limits are then checked as bytes arrive, the idle
    limit by httpx's read timeout); ``record_to`` records each exchange as a
    cassette: one file each in a directory, or all appended in order to one file
    (see ``RecordingTransport``); ``resume`` (a ``Resume``, or True for ``Resume()``)
    continues every stream that breaks, in a new request (see ``Resume``).
    ``body_limits`` bounds what is read of a body (``BodyLimits``).
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
        self._http = http_client if http_client is not None else sync_http_client(record_to)
        if not self._owns_http and record_to is not None:
            raise ValueError("record_to cannot wrap a caller's http_client; record with yours")

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
    ) -> Stream:
        """A stream of typed chat events; use it as a context manager.

        ``params`` go into the request body (tools, reasoning, provider, models,
        max_tokens, ...); ``stream_options.include_usage`` is on unless set.
        ``resume`` overrides the client's policy for this stream (False: none).
        """
        core = self._core(
            time.monotonic(),
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
        resume: ResumeArg = None,
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
            resume=resume,
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
        core = self._core(
            time.monotonic(),
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
                core.begin_attempt(time.monotonic())
                try:
                    response = self._http.send(request, stream=True)
                    try:
                        limits = core.body_limits
                        if response.is_success:
                            body = read_capped(
                                response,
                                limits.completion_body,
                                inflation=limits.inflation,
                                strict=True,
                                overdue=lambda: core.total_overdue(time.monotonic()),
                            )
                            result = core.plain_result(response.status_code, response.headers, body)
                            core.plain_end(time.monotonic(), result)
                            return result
                        body = read_capped(response, limits.error_body, inflation=limits.inflation)
                    finally:
                        response.close()
                    raise core.head_error(response.status_code, response.headers, body)
                except Exception as exc:
                    decision = core.decide(exc, time.monotonic(), finish=False)
                    if isinstance(decision, GiveUp):
                        raise decision.error from decision.cause
                    time.sleep(decision.delay)
        except BaseException as exc:
            core.plain_end(time.monotonic(), error=exc)  # observers hear of the failure too
            raise

    def close(self) -> None:
        """Close the connection pool (only when the client created it)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self


class Stream(ClosesOnExit):
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

    def __iter__(self) -> Iterator[ChatEvent]:
        self._open()
        core = self._core
        try:
            while True:
                events = self._next_batch()
                if events is None:
                    return
                limit = None if core.finished else core.clocks.event_deadline()
                if limit is None:
                    yield from events
                    continue
                # A slow consumer: the deadlines hold between the events of one read.
                for event in events:
                    if time.monotonic() >= limit:
                        self._overdue()
                    yield event
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
        DEADLINE.set(None)
        response, raw, self._response, self._raw = self._response, self._raw, None, None
        if raw is not None:
            raw.close()  # type: ignore[attr-defined]
        if response is not None:
            response.close()

    def _connect(self) -> None:
        core = self._core
        while True:
            core.begin_attempt(time.monotonic())
            body = core.take_body()
            if body is not None:  # a continuation (see ``Resume``)
                self._request = with_body(self._request, body)
            try:
                DEADLINE.set(core.clocks.deadline())
                response = self._http.send(self._request, stream=True)
                self._response = self._last_response = response
                if core.check_head(response.status_code, response.headers, encoding_of(response)):
                    self._raw = body_chunks(response)  # decoded by the core, step by step
                    return
                limits = core.body_limits
                body = read_capped(response, limits.error_body, inflation=limits.inflation)
                self._close_response()
                raise core.head_error(response.status_code, response.headers, body)
            except BaseException as exc:
                self._failed(exc)

    def _overdue(self) -> None:
        err = self._core.overdue(time.monotonic())
        if err is not None:
            self._close_response()
            raise err

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
                self._failed(core.take_pending())
                continue
            if core.announce:
                return core.take_announce()
            if core.finished:
                if core.error is not None:
                    raise core.error
                return None
            if self._raw is None:
                self._connect()
                continue
            if core.backlog:
                events = core.feed(b"", time.monotonic())
                if core.finished:
                    self._close_response()
                return events
            deadline = core.read_deadline(time.monotonic())
            try:
                DEADLINE.set(deadline)
                chunk = next(self._raw, None)
            except BaseException as exc:
                if not core.ends_body(exc):
                    self._failed(exc)
                    continue
                chunk = None
            now = time.monotonic()
            if chunk is None:
                events = core.end_of_body(now)
                self._close_response()
                return events
            events = core.feed(chunk, now)
            if core.finished:
                self._close_response()
            return events
