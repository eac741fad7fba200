"""What rawsse needs to know about httpx, in one place.

The sans-I/O ``StreamCore`` never builds an httpx object or walks httpx's
exception tree: the clients build their pool limits and timeouts here, and
``translate_error`` is handed to the core to turn httpx's exceptions into
rawsse's errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from ._errors import APIConnectionError, ConnectTimeout, IncompleteStreamError, RawSSEError
from ._timeouts import Timeouts

if TYPE_CHECKING:
    from ._base_client import StreamCore

__all__ = ["DEFAULT_LIMITS", "httpx_timeout", "plain_timeout", "translate_error"]

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


def translate_error(exc: Exception, core: StreamCore, now: float) -> RawSSEError | None:
    """The rawsse error for one of httpx's exceptions, or None when it is foreign."""
    if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
        return ConnectTimeout(
            f"connecting took longer than {core.timeouts.connect} s ({type(exc).__name__})",
            timeout=core.timeouts.connect,
        )
    if isinstance(exc, httpx.TimeoutException):
        return core.timeout_error(now)
    if isinstance(exc, httpx.TransportError):
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if core.response_started:
            return IncompleteStreamError(f"the connection broke mid-stream ({detail})")
        return APIConnectionError(f"the request failed before a response ({detail})")
    return None
