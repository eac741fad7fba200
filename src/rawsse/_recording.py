"""``RecordingTransport``: tee every exchange through any httpx transport into a cassette.

One class is both an ``httpx.BaseTransport`` and an ``httpx.AsyncBaseTransport``;
it serves whichever the inner transport is.  The body bytes reach the consumer
untouched: each chunk is only timestamped and kept (a reference, not a copy).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from ._cassette import Cassette, append_cassette, body_json, is_cassette_file, save_cassette
from ._constants import END_CLOSED, END_EOF, END_ERROR
from ._errors import CassetteError
from ._redact import redact_headers, redact_request, redact_text

__all__ = ["RecordingTransport", "TeeStream"]


class RecordingTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Wrap ``inner`` (a sync or async httpx transport) and record each exchange.

    ``path`` is a directory (``directory=True``, or by default when it exists as
    one, ends with a slash, or has no suffix and does not exist yet, like
    ``cassettes``) that gets one new
    file per exchange, named ``<UTC time>-<model>.jsonl``; otherwise it is one
    cassette file of any name (``out.jsonl``, ``run.cassette``) to which every
    exchange is appended in order, so none is lost (``load_cassettes`` and
    ``ReplayTransport`` read them all).  Missing parent directories are created.
    An existing file that is not a cassette raises ``CassetteError`` at once.

    A cassette is written when its body ends (``end: eof`` or ``error``) or, at
    the latest, when the response is closed (``end: closed`` if the consumer
    stopped reading early).  A request that fails before any response is not
    recorded.  ``saved`` lists the files written.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport | httpx.AsyncBaseTransport,
        path: str | os.PathLike[str],
        *,
        directory: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.path = Path(path)
        self.saved: list[Path] = []
        self._clock = clock
        if directory is None:
            trailing = str(path).endswith(("/", os.sep))
            directory = trailing or self.path.is_dir()
            directory = directory or (not self.path.suffix and not self.path.exists())
        self._single = not directory
        if self._single and not is_cassette_file(self.path, missing_ok=True):
            raise CassetteError(f"{self.path}: exists and is not a cassette; not recording into it")

    def __repr__(self) -> str:
        return f"RecordingTransport({self.inner!r}, {str(self.path)!r})"

    # -- httpx.BaseTransport ------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        inner = self.inner
        if not isinstance(inner, httpx.BaseTransport):
            raise TypeError(f"{inner!r} is an async transport: use it with httpx.AsyncClient")
        tape = _Tape(self, request, request.read())
        response = inner.handle_request(request)
        return tape.response(response)

    def close(self) -> None:
        if isinstance(self.inner, httpx.BaseTransport):
            self.inner.close()

    # -- httpx.AsyncBaseTransport -------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        inner = self.inner
        if not isinstance(inner, httpx.AsyncBaseTransport):
            raise TypeError(f"{inner!r} is a sync transport: use it with httpx.Client")
        tape = _Tape(self, request, await request.aread())
        response = await inner.handle_async_request(request)
        return tape.response(response)

    async def aclose(self) -> None:
        if isinstance(self.inner, httpx.AsyncBaseTransport):
            await self.inner.aclose()

    # -- files --------------------------------------------------------------------------

    def _target(self, cassette: Cassette) -> Path:
        if self._single:
            return self.path
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", cassette.model or "exchange").strip("-.")
        base = f"{stamp}-{slug or 'exchange'}"
        candidate = self.path / f"{base}.jsonl"
        n = 1
        while candidate.exists() or candidate in self.saved:
            n += 1
            candidate = self.path / f"{base}-{n}.jsonl"
        return candidate


class _Tape:
    """One exchange being recorded."""

    def __init__(self, owner: RecordingTransport, request: httpx.Request, content: bytes) -> None:
        self.owner = owner
        self.clock = owner._clock
        self.request = redact_request(
            request.method, str(request.url), request.headers.multi_items(), body_json(content)
        )
        self.recorded_at = (
            datetime.datetime.now(datetime.timezone.utc)
            .isoformat(timespec="microseconds")
            .replace("+00:00", "Z")
        )
        self.chunks: list[tuple[float, bytes]] = []
        self.status = 0
        self.headers: dict[str, str] = {}
        self.response_t = 0.0
        self.done = False
        # Last: offsets count from the moment the request goes to the inner transport.
        self.t0 = self.clock()

    def response(self, response: httpx.Response) -> httpx.Response:
        self.response_t = self.clock() - self.t0
        self.status = response.status_code
        self.headers = redact_headers(response.headers.multi_items())
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=TeeStream(response.stream, self.take, self.finish),
            extensions=response.extensions,
        )

    def take(self, chunk: bytes) -> None:
        self.chunks.append((self.clock() - self.t0, bytes(chunk)))

    def finish(self, end: str, exc: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        error = None
        if exc is not None:
            error = redact_text(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        cassette = Cassette(
            request=self.request,
            status=self.status,
            headers=self.headers,
            chunks=[(round(t, 6), data) for t, data in self.chunks],
            end=end,
            error=error,
            response_t=round(self.response_t, 6),
            end_t=round(self.clock() - self.t0, 6),
            recorded_at=self.recorded_at,
        )
        path = self.owner._target(cassette)
        if self.owner._single:
            append_cassette(cassette, path)
        else:
            save_cassette(cassette, path)
        self.owner.saved.append(path)


class TeeStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """The inner body stream, each chunk shown to ``on_chunk`` on its way through.

    ``on_end(end, exc)`` is called once: ``END_EOF`` when the body ended,
    ``END_ERROR`` with the exception that cut it, ``END_CLOSED`` when the consumer
    closed the response first.  The chunks reach the consumer untouched.
    """

    def __init__(
        self,
        stream: Any,
        on_chunk: Callable[[bytes], object],
        on_end: Callable[[str, BaseException | None], object] | None = None,
    ) -> None:
        self._stream = stream
        self._on_chunk = on_chunk
        self._on_end = on_end
        self._ended = False

    def _end(self, end: str, exc: BaseException | None = None) -> None:
        if not self._ended:
            self._ended = True
            if self._on_end is not None:
                self._on_end(end, exc)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Around the whole read: ``END_EOF`` when it ends, ``END_ERROR`` when it raises."""
        try:
            yield
        except Exception as exc:
            self._end(END_ERROR, exc)
            raise
        self._end(END_EOF)

    def __iter__(self) -> Iterator[bytes]:
        on_chunk = self._on_chunk
        with self._reading():
            for chunk in self._stream:
                on_chunk(chunk)
                yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        on_chunk = self._on_chunk
        with self._reading():
            async for chunk in self._stream:
                on_chunk(chunk)
                yield chunk

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        try:
            if close is not None:
                close()
        finally:
            self._end(END_CLOSED)

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        try:
            if aclose is not None:
                await aclose()
        finally:
            self._end(END_CLOSED)
