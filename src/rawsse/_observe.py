"""Stream observers: the hooks a client offers to tracing and metrics (``rawsse.otel``).

A client holds any number of ``StreamObserver``s (``client.add_observer``).  When
a stream (or a ``complete(stream=False)`` request) sends its first request, each
observer's ``start`` gets a ``RequestInfo`` and may return a
``StreamObservation`` for that one request, which then hears about each retry
and continuation and, exactly once, the ``StreamOutcome``.  The calls come from
the client's shared core, so the sync and async clients behave alike, and cost
nothing when no observer is added: no call happens per chunk; the gaps between
content arrive with the outcome.

Observers run inside the stream: they must be quick and must not raise (an
exception from an observer propagates to the caller, like one from
``on_metrics``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._accumulate import ChatResult
from ._metrics import StreamMetrics

__all__ = ["RequestInfo", "StreamObservation", "StreamObserver", "StreamOutcome"]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """One chat request as an observer sees it (never the API key or headers)."""

    model: str
    """The model the request named."""
    server_address: str
    """The host of the base URL."""
    server_port: int
    stream: bool = True
    operation: str = "chat"
    params: Mapping[str, Any] = field(default_factory=dict)
    """The body's other parameters as the caller passed them (``max_tokens``,
    ``temperature``, ...); may contain prompt text (tools, ``response_format``)."""
    messages: Any = None
    """The request's messages (prompt text: for observers that opted in to content)."""


@dataclass(frozen=True, slots=True)
class StreamOutcome:
    """How one stream ended."""

    metrics: StreamMetrics
    result: ChatResult
    """The final result (possibly partial)."""
    error: BaseException | None
    """The error the stream ended with; None when it completed or was cancelled by
    the caller (``metrics.status`` tells which)."""
    gaps: tuple[float, ...] = ()
    """Seconds between consecutive reads that delivered content, in order (the
    ones ``metrics.gap_p50`` summarises)."""


class StreamObservation(Protocol):
    """One observer's view of one stream."""

    def retry(self, attempt: int, error: BaseException, delay: float) -> None:
        """Attempt ``attempt`` failed with ``error``; the next starts in ``delay`` s."""

    def continuation(self, number: int, error: BaseException | None) -> None:
        """The stream was cut (``error``) and continuation ``number`` (1, 2, ...) starts."""

    def end(self, outcome: StreamOutcome) -> None:
        """The stream ended (called once)."""


class StreamObserver(Protocol):
    """Something that watches every stream of a client."""

    def start(self, request: RequestInfo) -> StreamObservation | None:
        """A stream sends its first request; return None to ignore this stream."""
