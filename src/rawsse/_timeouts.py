"""``Timeouts``: the five limits of one streaming request, and the clocks that enforce them.

Two clocks, because keep-alives prove liveness but not progress: ``idle`` counts
raw bytes (OpenRouter's ``: OPENROUTER PROCESSING`` comments reset it), while
``first_token`` and ``stall`` count content events (text, reasoning, tool-call or
refusal deltas) and ignore keep-alives.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import FirstTokenTimeout, IdleTimeout, StallTimeout, StreamTimeout, TotalTimeout

__all__ = ["Timeouts"]


@dataclass(frozen=True)
class Timeouts:
    """Limits in seconds for one streaming request; ``None`` disables a limit.

    The defaults follow OpenRouter's behaviour: it sends keep-alive comments while
    a model thinks, and Cloudflare in front of it drops connections silent for about
    100 s, so 30 s without a single byte means the stream is dead.
    """

    connect: float | None = 10.0
    """Establishing the TCP/TLS connection (and waiting for a free pooled one)."""
    first_token: float | None = 60.0
    """From sending the request to the first content event.  Generous, because
    reasoning models and cold providers think before they speak (keep-alives flow)."""
    idle: float | None = 30.0
    """No bytes at all, keep-alive comments included."""
    stall: float | None = 60.0
    """No content event, though bytes (keep-alives) keep arriving; starts at the first
    content event (before it, ``first_token`` applies)."""
    total: float | None = 120.0
    """The whole request, retries included: the usual budget of an interactive stream.
    Raise it (or pass ``None``) for long generations."""

    def __post_init__(self) -> None:
        for name in ("connect", "first_token", "idle", "stall", "total"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not value > 0):
                raise ValueError(f"Timeouts.{name} must be a positive number or None: {value!r}")


class Clocks:
    """The deadlines of one stream, in the caller's clock (``time.monotonic`` or anyio's).

    ``start`` marks the whole request (``total``), ``begin_attempt`` one HTTP attempt
    (``first_token``, ``idle``).  The fields are moved in place, on the hot path:
    ``StreamCore.feed`` sets ``first_content`` and ``last_content`` as content
    arrives, and the shells set ``read_start`` each time they wait for bytes.
    ``deadline`` and ``expired`` read them.
    """

    __slots__ = ("_t", "attempt_start", "first_content", "last_content", "read_start", "start")

    def __init__(self, timeouts: Timeouts, now: float) -> None:
        self._t = timeouts
        self.start = now
        self.attempt_start = now
        self.read_start = now
        """When the shell began waiting for bytes: the idle clock runs from here, so
        time the consumer spent between reads is not the server's silence."""
        self.first_content: float | None = None
        self.last_content = now

    def begin_attempt(self, now: float) -> None:
        self.attempt_start = now
        self.read_start = now
        self.first_content = None
        self.last_content = now

    def deadline(self) -> float | None:
        """The earliest moment a limit can expire, or None when no limit is set."""
        t = self._t
        best: float | None = None
        if t.total is not None:
            best = self.start + t.total
        if t.idle is not None:
            d = self.read_start + t.idle
            if best is None or d < best:
                best = d
        if self.first_content is None:
            if t.first_token is not None:
                d = self.attempt_start + t.first_token
                if best is None or d < best:
                    best = d
        elif t.stall is not None:
            d = self.last_content + t.stall
            if best is None or d < best:
                best = d
        # A deadline that has passed is returned as it is, with no grace: a read then
        # only takes bytes already buffered, and the stream ends at the next event
        # boundary, however fast bytes arrive.
        return best

    def event_deadline(self) -> float | None:
        """The earliest moment ``total``, ``first_token`` or ``stall`` expires: the
        limits the shells check between the events they hand out (idle counts only
        the server's silence, not the time the consumer takes)."""
        t = self._t
        best = self.start + t.total if t.total is not None else None
        if self.first_content is None:
            if t.first_token is not None:
                d = self.attempt_start + t.first_token
                best = d if best is None or d < best else best
        elif t.stall is not None:
            d = self.last_content + t.stall
            best = d if best is None or d < best else best
        return best

    def expired(self, now: float, *, idle: bool = True) -> tuple[type[StreamTimeout], float] | None:
        """The limit that has expired at ``now`` (the earliest one), with its value;
        ``idle=False`` leaves out the idle limit (checked between events)."""
        # The hot path (once per read): one comparison with the earliest deadline.
        soonest = self.deadline() if idle else self.event_deadline()
        if soonest is None or now < soonest:
            return None
        t = self._t
        found: list[tuple[float, type[StreamTimeout], float]] = []
        if t.total is not None:
            found.append((self.start + t.total, TotalTimeout, t.total))
        if idle and t.idle is not None:
            found.append((self.read_start + t.idle, IdleTimeout, t.idle))
        if self.first_content is None:
            if t.first_token is not None:
                found.append((self.attempt_start + t.first_token, FirstTokenTimeout, t.first_token))
        elif t.stall is not None:
            found.append((self.last_content + t.stall, StallTimeout, t.stall))
        due = [f for f in found if f[0] <= now]
        if not due:
            return None
        _, kind, limit = min(due, key=lambda f: f[0])
        return kind, limit
