"""``StreamShell``: what ``Stream`` and ``AsyncStream`` share, apart from their I/O.

The state of one stream's shell (the request, the current response, the body
iterator), the views (``result``, ``metrics``, ``response``) and the steps around
each HTTP attempt.  The shells add only the I/O: send, read, sleep, close.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import httpx

from ._accumulate import ChatResult
from ._base_client import StreamCore
from ._errors import RawSSEError
from ._httpx_adapter import encoding_of, with_body
from ._metrics import StreamMetrics

__all__ = ["StreamShell"]

HttpT = TypeVar("HttpT", httpx.Client, httpx.AsyncClient)
RawT = TypeVar("RawT")


class StreamShell(Generic[HttpT, RawT]):
    """One stream's shell state; ``RawT`` is the body iterator (sync or async)."""

    def __init__(self, http: HttpT, request: httpx.Request, core: StreamCore) -> None:
        self._http: HttpT = http
        self._request = request
        self._core = core
        self._response: httpx.Response | None = None  # open, being read
        self._last_response: httpx.Response | None = None  # kept for status and headers
        self._raw: RawT | None = None
        self._opened = False

    def _now(self) -> float:
        """The shell's clock (the core's times are on it)."""
        raise NotImplementedError

    @property
    def result(self) -> ChatResult:
        """The result so far (final once the stream ended)."""
        return self._core.result

    @property
    def metrics(self) -> StreamMetrics:
        return self._core.metrics(self._now())

    @property
    def response(self) -> httpx.Response | None:
        """The HTTP response of the current attempt (status, headers)."""
        return self._last_response

    def _attempt(self) -> httpx.Request:
        """Begin an HTTP attempt: the request to send (a continuation's has a new body,
        see ``Resume``)."""
        self._core.begin_attempt(self._now())
        body = self._core.take_body()
        if body is not None:
            self._request = with_body(self._request, body)
        return self._request

    def _is_stream(self, response: httpx.Response) -> bool:
        """Keep ``response``: True when its body is the stream; False when it is an error
        whose body the shell reads for ``_head_error``."""
        self._response = self._last_response = response
        return self._core.check_head(response.status_code, response.headers, encoding_of(response))

    def _head_error(self, response: httpx.Response, body: bytes) -> RawSSEError:
        return self._core.head_error(response.status_code, response.headers, body)
