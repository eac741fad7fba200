"""``Client``/``Stream``: the thin sync I/O shell (``_async_client`` is its twin).

All decisions live in ``_base_client`` (and ``_retry``), the settings and
requests in ``_client_config``, the shared shell state in ``_stream_shell``; these
classes send, read, sleep between retries and close, and enforce deadlines without
threads, by bounding every socket read of their own pool by the stream's next deadline.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import httpx

from ._accumulate import ChatResult
from ._base_client import StreamCore
from ._chat_events import ChatEvent, TextDelta
from ._client_config import BaseClient, Call
from ._closing import ClosesOnExit
from ._httpx_adapter import DEADLINE, body_chunks, read_capped, sync_http_client
from ._stream_shell import StreamShell

__all__ = ["Client", "Stream"]


class Stream(ClosesOnExit, StreamShell[httpx.Client, Iterator[bytes]]):
    """One streaming response: iterate it for ``ChatEvent``s.

    Iterating raises rawsse's errors where they happen, after every event before
    them.  ``break`` (or leaving the ``with`` block, or ``close()``) closes the
    connection at once and marks the result ``cancelled``.
    """

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
        return self._core.outcome()

    def close(self) -> None:
        """Stop: close the connection and mark an unfinished result ``cancelled``."""
        self._core.cancel(time.monotonic())
        self._close_response()

    # -- shell ----------------------------------------------------------------

    _now = staticmethod(time.monotonic)

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
        while True:
            request = self._attempt()
            try:
                DEADLINE.set(self._core.clocks.deadline())
                response = self._http.send(request, stream=True)
                if self._is_stream(response):
                    self._raw = body_chunks(response)  # decoded by the core, step by step
                    return
                raise self._head_error(response, read_capped(response, self._core))
            except BaseException as exc:
                self._failed(exc)

    def _overdue(self) -> None:
        err = self._core.overdue(time.monotonic())
        if err is not None:
            self._close_response()
            raise err

    def _failed(self, exc: BaseException) -> None:
        """Handle a failure: return to retry (after the backoff) or raise."""
        self._close_response()
        time.sleep(self._core.backoff(exc, time.monotonic()))

    def _next_batch(self) -> list[ChatEvent] | None:
        core = self._core
        while True:
            if core.pending is not None:
                self._failed(core.take_pending())
            elif core.announce or core.finished:
                return core.take_ready()
            elif self._raw is None:
                self._connect()
            else:
                events = self._read(self._raw)
                if events is not None:
                    return events

    def _read(self, raw: Iterator[bytes]) -> list[ChatEvent] | None:
        """The events of one read (of the ``backlog`` first); None after a failure."""
        core = self._core
        chunk: bytes | None = b""
        if not core.backlog:
            try:
                DEADLINE.set(core.read_deadline(time.monotonic()))
                chunk = next(raw, None)
            except BaseException as exc:
                if not core.ends_body(exc):
                    self._failed(exc)
                    return None
                chunk = None
        events = core.take(chunk, time.monotonic())
        if chunk is None or core.finished:  # the body ended, or the stream did
            self._close_response()
        return events


class Client(ClosesOnExit, BaseClient[httpx.Client, Stream, ChatResult]):
    """A synchronous client for OpenRouter or any OpenAI-compatible endpoint.

    ``api_key`` defaults to ``$OPENROUTER_API_KEY`` (required only by OpenRouter's
    own URL); ``timeout`` is a ``Timeouts``; ``retries`` counts retries before the
    first content event; ``http_client`` brings your own ``httpx.Client`` (the
    first-token, stall and total limits are then checked as bytes arrive, the idle
    limit by httpx's read timeout); ``record_to`` records each exchange as a
    cassette: one file each in a directory, or all appended in order to one file
    (see ``RecordingTransport``); ``resume`` (a ``Resume``, or True for ``Resume()``)
    continues every stream that breaks, in a new request (see ``Resume``).
    ``body_limits`` bounds what is read of a body (``BodyLimits``); ``limits`` (an
    ``httpx.Limits``) sizes the client's own connection pool (default: 2,048
    connections, 256 kept idle), and cannot go with ``http_client``.
    """

    def close(self) -> None:
        """Close the connection pool (only when the client created it)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    # -- shell ----------------------------------------------------------------

    _now = staticmethod(time.monotonic)
    _new_http = staticmethod(sync_http_client)
    _stream_type = Stream

    def _complete(self, call: Call, stream: bool) -> ChatResult:
        core, request = self._prepare(call, stream)
        if not stream:
            return self._plain(core, request)
        with Stream(self._http, request, core) as opened:
            return opened.final()

    def _plain(self, core: StreamCore, request: httpx.Request) -> ChatResult:
        try:
            while True:
                core.begin_attempt(time.monotonic())
                try:
                    with contextlib.closing(self._http.send(request, stream=True)) as response:
                        body = read_capped(response, core, time.monotonic)
                    return core.plain_result(
                        response.status_code, response.headers, body, time.monotonic()
                    )
                except Exception as exc:
                    time.sleep(core.backoff(exc, time.monotonic(), finish=False))
        except BaseException as exc:
            core.plain_end(time.monotonic(), error=exc)  # observers hear of the failure too
            raise
