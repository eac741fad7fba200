"""Every error rawsse raises.  One base class; the tree::

    RawSSEError
    ├── DecodeError                 carries the ``events`` decoded before it
    │   ├── SSEProtocolError        a bound of the SSE decoder was violated
    │   └── MalformedChunk          a data payload that is not a valid chat chunk
    ├── ConfigurationError          the client cannot be built as asked (e.g. no API key)
    ├── CassetteError               a cassette file is damaged, newer, or missing
    ├── APIError                    anything that went wrong talking to the server
    │   ├── APIConnectionError      connecting or sending failed (no response)
    │   ├── APIStatusError          the server answered with an HTTP error before the stream
    │   │   ├── BadRequestError             400
    │   │   ├── AuthenticationError         401
    │   │   ├── PaymentRequiredError        402
    │   │   ├── PermissionDeniedError       403 (moderation: ``metadata``)
    │   │   ├── NotFoundError               404
    │   │   ├── RequestTimeoutError         408
    │   │   ├── RateLimitError              429 (``retry_after``)
    │   │   ├── InternalServerError         500 and other 5xx
    │   │   ├── BadGatewayError             502 (provider down / invalid upstream)
    │   │   └── ServiceUnavailableError     503 (no provider meets the routing)
    │   └── UnexpectedContentType   a 2xx answer that is not ``text/event-stream``
    └── StreamInterrupted           the stream broke after it started; carries ``partial``
        ├── StreamError             the server sent an in-band error chunk
        ├── IncompleteStreamError   the connection ended before ``[DONE]``
        ├── ContinuationError       a resumed stream could not be continued (see ``Resume``)
        ├── BodyError               a damaged body encoding, or a ``BodyLimits`` bound
        └── StreamTimeout           a timeout fired (each carries ``partial``)
            ├── ConnectTimeout
            ├── FirstTokenTimeout
            ├── IdleTimeout
            ├── StallTimeout
            └── TotalTimeout

``DecodeError`` also carries ``partial``.  Every ``partial`` is the
``ChatResult`` received so far, so catching ``RawSSEError`` loses nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._accumulate import ChatResult
    from ._chat_events import ChatEvent, InBandError

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "AuthenticationError",
    "BadGatewayError",
    "BadRequestError",
    "BodyError",
    "CassetteError",
    "ConfigurationError",
    "ConnectTimeout",
    "ContinuationError",
    "DecodeError",
    "FirstTokenTimeout",
    "IdleTimeout",
    "IncompleteStreamError",
    "InternalServerError",
    "MalformedChunk",
    "NotFoundError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "RawSSEError",
    "RequestTimeoutError",
    "SSEProtocolError",
    "ServiceUnavailableError",
    "StallTimeout",
    "StreamError",
    "StreamInterrupted",
    "StreamTimeout",
    "TotalTimeout",
    "UnexpectedContentType",
]


class RawSSEError(Exception):
    """Base class of every error rawsse raises."""


class DecodeError(RawSSEError):
    """The bytes could not be decoded (the base of ``SSEProtocolError`` and
    ``MalformedChunk``).

    ``events`` are the events decoded from the same call before the failure, so
    none is lost; ``partial`` the result so far, where the raiser has one
    (``parse_chat_stream`` and the clients set it).
    """

    def __init__(
        self,
        message: str,
        *,
        events: list[Any] | None = None,
        partial: ChatResult | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.events: list[Any] = events if events is not None else []
        self.partial = partial


class SSEProtocolError(DecodeError):
    """The byte stream broke a bound of the SSE decoder (a line or event too large).

    ``events``: the SSE events and comments (from ``SSEDecoder``) or the chat events
    (from ``ChatDecoder``) decoded before the violation.
    """


class MalformedChunk(DecodeError):
    """A data payload that is not a valid chat-completion chunk.

    ``payload`` is the raw data string that failed; ``events`` the chat events
    decoded from the same ``feed`` before it.
    """

    events: list[ChatEvent]

    def __init__(
        self,
        message: str,
        *,
        payload: str,
        events: list[ChatEvent] | None = None,
        partial: ChatResult | None = None,
    ) -> None:
        super().__init__(message, events=events, partial=partial)
        self.payload = payload


class ConfigurationError(RawSSEError):
    """The client cannot be built or used as asked (for example: no API key)."""


class CassetteError(RawSSEError):
    """A cassette file is damaged, of a newer format, or missing."""


class APIError(RawSSEError):
    """Something went wrong talking to the server."""


class APIConnectionError(APIError):
    """Connecting to the server or sending the request failed."""


class APIStatusError(APIError):
    """The server answered with an HTTP error status before any stream began.

    ``status`` is the HTTP status; ``code``, ``message`` and ``metadata`` come from
    OpenRouter's error JSON (``{"error": {"code", "message", "metadata"}}``) when
    the body has it; ``body`` is the raw body text.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: int | str | None = None,
        metadata: dict[str, Any] | None = None,
        body: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.metadata = metadata
        self.body = body
        self.headers = headers if headers is not None else {}


class BadRequestError(APIStatusError):
    """400: bad or missing parameters."""


class AuthenticationError(APIStatusError):
    """401: missing or invalid credentials."""


class PaymentRequiredError(APIStatusError):
    """402: not enough credits."""


class PermissionDeniedError(APIStatusError):
    """403: forbidden; moderation details in ``metadata``."""


class NotFoundError(APIStatusError):
    """404: no such model or endpoint."""


class RequestTimeoutError(APIStatusError):
    """408: the server timed out."""


class RateLimitError(APIStatusError):
    """429: rate limited; ``retry_after`` seconds when the server said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class InternalServerError(APIStatusError):
    """500 and any 5xx without a class of its own."""


class BadGatewayError(APIStatusError):
    """502: the provider is down or returned an invalid response."""


class ServiceUnavailableError(APIStatusError):
    """503: no provider meets the routing requirements."""


class UnexpectedContentType(APIError):
    """A successful answer that is not ``text/event-stream`` where a stream was asked for."""

    def __init__(self, message: str, *, status: int, content_type: str, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.content_type = content_type
        self.body = body


class StreamInterrupted(RawSSEError):
    """The stream broke after it started.  ``partial`` is the result so far."""

    def __init__(self, message: str, *, partial: ChatResult | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.partial = partial


class StreamError(StreamInterrupted):
    """The server sent an in-band error chunk after HTTP 200.

    ``code``, ``error_message`` and ``metadata`` come from the chunk's ``error``
    object; ``raw`` is the whole chunk.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | str | None = None,
        metadata: dict[str, Any] | None = None,
        raw: dict[str, Any] | None = None,
        partial: ChatResult | None = None,
    ) -> None:
        super().__init__(message, partial=partial)
        self.code = code
        self.metadata = metadata
        self.raw = raw

    @classmethod
    def from_event(cls, event: InBandError) -> StreamError:
        """The error for an ``InBandError`` event that ends a stream."""
        code = event.code
        suffix = "" if code is None else f" (code {code})"
        message = f"the server sent an error in the stream: {event.message}{suffix}"
        return cls(message, code=code, metadata=event.metadata, raw=event.raw)


class IncompleteStreamError(StreamInterrupted):
    """The connection closed or was reset before the stream finished."""


class ContinuationError(StreamInterrupted):
    """A resumed stream could not go on: the continuation request failed with an
    error that carries no partial result of its own (an HTTP error, say), or the
    new generation could not be joined to the text already delivered.

    ``partial`` is the answer delivered so far; the underlying error, if any, is
    the ``__cause__``.
    """


class BodyError(StreamInterrupted):
    """The response body could not be decoded (a damaged or unknown ``Content-Encoding``)
    or broke a bound of ``BodyLimits`` (inflation, the size of a ``stream=False`` answer)."""


class StreamTimeout(StreamInterrupted):
    """A timeout fired; ``timeout`` is the limit in seconds that was exceeded."""

    def __init__(
        self, message: str, *, timeout: float | None = None, partial: ChatResult | None = None
    ) -> None:
        super().__init__(message, partial=partial)
        self.timeout = timeout


class ConnectTimeout(StreamTimeout):
    """Connecting took longer than ``Timeouts.connect``."""


class FirstTokenTimeout(StreamTimeout):
    """No content event within ``Timeouts.first_token`` of sending the request."""


class IdleTimeout(StreamTimeout):
    """No bytes at all (not even a keep-alive) for ``Timeouts.idle``."""


class StallTimeout(StreamTimeout):
    """No content event for ``Timeouts.stall`` although bytes kept arriving."""


class TotalTimeout(StreamTimeout):
    """The whole request took longer than ``Timeouts.total``."""
