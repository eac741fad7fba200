"""Retry or give up: what ``StreamCore.decide`` answers after a failed attempt.

Pure: which errors are retried and after how long (backoff with jitter, or the
server's ``Retry-After``), the final status an error gives a stream, and the typed
timeout for a limit that fired.  ``_base_client`` applies them to one stream.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TypeAlias

from ._constants import ChatStatus
from ._errors import (
    APIConnectionError,
    APIStatusError,
    ConnectTimeout,
    FirstTokenTimeout,
    IdleTimeout,
    IncompleteStreamError,
    RawSSEError,
    StreamTimeout,
)
from ._http_errors import parse_retry_after

__all__ = [
    "MAX_RETRY_AFTER",
    "RETRY_STATUSES",
    "Decision",
    "GiveUp",
    "Retry",
    "retry_delay",
    "status_of",
    "timeout_error",
]

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503})
MAX_RETRY_AFTER = 60.0  # a server asking for a longer wait is not retried; the error says why


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again after ``delay`` seconds (0 for a continuation: ``StreamCore.take_body``
    then gives the new request body, and ``announce`` the ``Continued`` event)."""

    delay: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop: ``raise error from cause``."""

    error: BaseException
    cause: BaseException | None = None
    """The foreign exception ``error`` translates, if it does."""


Decision: TypeAlias = "Retry | GiveUp"
"""What ``StreamCore.decide`` says after a failed attempt."""


def retry_delay(err: RawSSEError, tries: int, delay: float, max_delay: float) -> float | None:
    """Seconds to wait before trying again after ``err`` (``tries`` retries made), or
    None when ``err`` is not retried.

    Retried: connection failures, 408/429/500/502/503 (after their ``Retry-After``,
    unless it asks for more than ``MAX_RETRY_AFTER``) and the idle and first-token
    timeouts; otherwise after ``delay`` doubled per try, at most ``max_delay``, jittered.
    """
    hinted: float | None = None
    if isinstance(err, APIStatusError):
        if err.status not in RETRY_STATUSES:
            return None
        hinted = getattr(err, "retry_after", None)
        if hinted is None:
            hinted = parse_retry_after(err.headers.get("retry-after"))
    elif not isinstance(err, (APIConnectionError, ConnectTimeout, IdleTimeout, FirstTokenTimeout)):
        return None
    if hinted is not None:
        return None if hinted > MAX_RETRY_AFTER else hinted
    backoff: float = min(max_delay, delay * 2**tries)
    return backoff * random.uniform(0.5, 1.0)  # jitter, not crypto


def status_of(err: BaseException | None) -> ChatStatus:
    """The final status of a request that ended with ``err``."""
    if isinstance(err, StreamTimeout):
        return ChatStatus.TIMED_OUT
    if isinstance(err, IncompleteStreamError):
        return ChatStatus.TRUNCATED
    return ChatStatus.ERROR


_WHAT = {
    "TotalTimeout": "the request took longer than",
    "IdleTimeout": "no bytes arrived for",
    "FirstTokenTimeout": "no content arrived within",
    "StallTimeout": "no content arrived (only keep-alives) for",
}


def timeout_error(kind: type[StreamTimeout], limit: float | None) -> StreamTimeout:
    """The typed timeout for the limit ``limit`` of ``kind`` that fired."""
    what = _WHAT.get(kind.__name__, "timed out after")
    return kind(f"{what} {limit} s", timeout=limit)
