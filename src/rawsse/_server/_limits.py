"""What keeps the fixture server up under hostile clients: a connection cap and a quiet log.

``Connections`` admits at most ``cap`` connections.  A connection waiting for a
request head (idle keep-alive, or a client sending its head slowly or not at
all) can be closed to make room: when the cap is reached, the one that has
waited longest goes.  When every connection is busy answering, a new one is
refused at once (503).  So half-open connections never lock out a real
request, and the process stays far from its file descriptor limit.

``QuietLog`` reports each kind of error at most once per ``interval`` seconds
(with how many were left out), one line each and no traceback: a flood of bad
connections cannot fill a disk.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DESCRIPTOR_RESERVE",
    "LOG_INTERVAL",
    "MAX_CONNECTIONS_CEILING",
    "Connections",
    "QuietLog",
    "default_max_connections",
]

DEFAULT_HEADER_TIMEOUT = 10.0
"""Seconds from a request's first byte to the end of its head (and as long for its body)."""

DEFAULT_IDLE_TIMEOUT = 60.0
"""Seconds a connection may wait for a request's first byte (idle keep-alive, or a fresh one)."""

DESCRIPTOR_RESERVE = 200
"""File descriptors kept free of connections: the listen backlog (100 sockets accepted in
one go before any is counted) and everything else the process opens."""

MAX_CONNECTIONS_CEILING = 10_000
"""The default cap when the open-file limit is higher (or unlimited)."""

LOG_INTERVAL = 60.0
"""Seconds between two log lines of the same kind of error."""


def default_max_connections() -> int:
    """The process's open-file limit less ``DESCRIPTOR_RESERVE``, from 16 to 10,000.

    Under the usual limit of 1,024 that is 824, so connections alone never run the
    process out of descriptors (where ``accept()`` would fail and nobody gets in).
    """
    try:
        import resource
    except ImportError:  # Windows: no such limit on sockets
        return 1000
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft > MAX_CONNECTIONS_CEILING + DESCRIPTOR_RESERVE:
        return MAX_CONNECTIONS_CEILING
    return max(16, soft - DESCRIPTOR_RESERVE)


class Connections:
    """Open connections, capped; the longest-waiting idle one makes room for a new one."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: set[asyncio.StreamWriter] = set()
        # Insertion order is waiting order: the first key has waited longest.
        self._idle: dict[asyncio.StreamWriter, None] = {}

    @property
    def open(self) -> int:
        """How many connections are counted in."""
        return len(self._open)

    def admit(self, writer: asyncio.StreamWriter) -> bool:
        """Count a new connection in; False when it must be refused (all are busy)."""
        if len(self._open) >= self.cap:
            if not self._idle:
                return False
            oldest = next(iter(self._idle))
            self.release(oldest)
            oldest.transport.abort()
        self._open.add(writer)
        return True

    def idle(self, writer: asyncio.StreamWriter) -> None:
        """``writer``'s connection waits for a request head: it may be closed for room."""
        if writer in self._open:
            self._idle[writer] = None

    def busy(self, writer: asyncio.StreamWriter) -> bool:
        """``writer``'s connection has a request to answer; False if it was closed for room."""
        self._idle.pop(writer, None)
        return writer in self._open

    def release(self, writer: asyncio.StreamWriter) -> None:
        """The connection ended, or was closed to make room."""
        self._open.discard(writer)
        self._idle.pop(writer, None)


class QuietLog:
    """One line per kind of error per ``interval`` seconds, on the ``rawsse.server`` logger."""

    def __init__(
        self,
        interval: float = LOG_INTERVAL,
        *,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.logger = logger if logger is not None else logging.getLogger("rawsse.server")
        self._clock = clock
        self._last: dict[str, float] = {}
        self._left_out: dict[str, int] = {}

    def report(self, kind: str, detail: str = "") -> None:
        """Log ``kind: detail`` unless ``kind`` was logged less than ``interval`` ago."""
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._left_out[kind] = self._left_out.get(kind, 0) + 1
            return
        self._last[kind] = now
        left_out = self._left_out.pop(kind, 0)
        more = f" ({left_out} more since the last report)" if left_out else ""
        self.logger.warning("%s%s%s", kind, f": {detail}" if detail else "", more)

    def loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """An event loop exception handler: the loop's own reports, one line per kind."""
        exc = context.get("exception")
        kind = str(context.get("message") or "event loop error")
        if exc is not None:
            kind += f" ({type(exc).__name__})"
        self.report(kind, "" if exc is None else str(exc))
