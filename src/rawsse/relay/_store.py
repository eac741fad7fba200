"""The store behind resumable relay streams: what every store promises.

A resumable stream is an append-only log of the relay's data events, keyed by
an unguessable id.  One producer (the holder of the stream's lease) appends;
any number of followers read everything after a position and then follow live
until the terminal event.  Positions are the SSE ``id:`` sequence numbers the
relay gives its data events (1, 2, 3, ...), so a browser's ``Last-Event-ID``
is directly a position.

Events are stored as ``(seq, name, data)`` records rather than SSE bytes: the
bytes follow from them exactly (``sse_bytes``), and a taker can rebuild the
text produced so far (``choice_texts``) without parsing SSE.

What goes wrong is a ``StoreError`` (``_store_errors``).

The lease: the producer creates the stream holding its lease and renews it
about every second; a lease not renewed expires after ``lease_ttl`` seconds
(at most 5 s by default), and then exactly one ``acquire_lease`` succeeds.
Appends are fenced by the lease, so a producer that lost it to another cannot
write; one whose lease lapsed (a long pause) while nobody took it takes it back
with its next append or renewal.  One
renewal also tells the producer whether the stream was cancelled and whether
anyone follows it, so its upkeep is one round trip a second.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .._frozen import Frozen

__all__ = [
    "Renewal",
    "StoreBase",
    "StoredEvent",
    "StreamInfo",
    "StreamStore",
    "choice_texts",
    "is_stream_id",
    "new_stream_id",
    "parse_events",
    "sse_bytes",
]

_ID_BYTES = 18
"""144 random bits: ``token_urlsafe`` gives 24 characters."""
_ID_RE = re.compile(r"[A-Za-z0-9_-]{22,64}")


class StoredEvent(Frozen):
    """One data event of a resumable stream."""

    __slots__ = ()
    seq: int
    """Its position: the SSE ``id:``, from 1, one more than the previous event's."""
    name: str
    """The SSE event name (``text``, ``done``, ...)."""
    data: str
    """The event's data: one compact JSON object on one line."""


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a store knows about one stream besides its events."""

    stream_id: str
    owner: str | None
    """The tag given at creation (e.g. a user id), for the relay's ``authorize`` hook."""
    request: bytes
    """The request body the stream answers: what a taker re-sends, with the text so far."""
    last_seq: int
    """The position of the last stored event (0 before the first)."""
    finished: bool
    """The terminal event is stored; the stream now lives for the store's ``ttl``."""
    cancelled: bool
    """Someone asked to stop the stream (``cancel``)."""
    holder: str | None
    """The lease's current holder, or None when the lease is free or expired."""


@dataclass(frozen=True, slots=True)
class Renewal:
    """What a producer learns from renewing its lease."""

    held: bool
    """It still holds the lease (now extended); False: stop, without writing."""
    cancelled: bool
    """Someone asked to stop the stream."""
    followed: bool
    """A follower is reading the stream (see ``StreamStore.followed``)."""


@runtime_checkable
class StreamStore(Protocol):
    """Storage for resumable streams (``MemoryStore``, ``RedisStore``)."""

    @property
    def lease_ttl(self) -> float:
        """Seconds an unrenewed lease lasts."""
        ...

    @property
    def operations(self) -> int:
        """Requests made to the store's backend so far (round trips, for cost figures)."""
        ...

    async def create(self, request: bytes, *, owner: str | None, holder: str) -> str:
        """Start a stream whose lease ``holder`` holds; return its new id."""
        ...

    async def info(self, stream_id: str) -> StreamInfo:
        """The stream's metadata; ``StreamNotFound`` when unknown or expired."""
        ...

    async def append(self, stream_id: str, holder: str, events: Sequence[StoredEvent]) -> None:
        """Store events (consecutive ``seq``) if ``holder`` holds the lease; else ``LeaseLost``.

        Events at or below the stored position are skipped, so retrying an
        append is harmless.
        """
        ...

    async def finish(self, stream_id: str, holder: str, events: Sequence[StoredEvent]) -> None:
        """``append`` whose last event is terminal; frees the lease and starts the TTL."""
        ...

    async def read(self, stream_id: str, after: int = 0) -> list[StoredEvent]:
        """The events stored after position ``after``, now, without waiting."""
        ...

    def follow(self, stream_id: str, after: int = 0) -> AsyncGenerator[StoredEvent, None]:
        """Every event after ``after``, then live ones, ending after the terminal event."""
        ...

    async def followed(self, stream_id: str) -> bool:
        """Whether a follower is reading the stream (``RedisStore``: lately, see ``presence``).

        The producer asks this to stop generating for nobody (the relay's ``linger``).
        """
        ...

    async def acquire_lease(self, stream_id: str, holder: str) -> bool:
        """Take the lease if it is free (``SET NX PX``); of several callers, one wins."""
        ...

    async def renew_lease(self, stream_id: str, holder: str) -> Renewal:
        """Extend ``holder``'s lease by ``lease_ttl`` (taking it back if it lapsed and nobody
        took it); and the stream's flags."""
        ...

    async def release_lease(self, stream_id: str, holder: str) -> None:
        """Give the lease up now (only if ``holder`` holds it)."""
        ...

    async def cancel(self, stream_id: str) -> None:
        """Ask the producer to stop; ``StreamNotFound`` when unknown."""
        ...

    async def wait_cancelled(self, stream_id: str, within: float) -> bool:
        """Wait up to ``within`` seconds for a ``cancel``; True when one came.

        Wakes at once, on every instance, without a round trip per wait; a cancel
        made while nobody waited may be missed here, and is then seen in the next
        ``renew_lease`` (``Renewal.cancelled``) or ``info``.
        """
        ...

    async def aclose(self) -> None:
        """Release the store's connections."""
        ...


class StoreBase:
    """What every store keeps and reports about itself; a base for ``StreamStore`` classes."""

    def __init__(self, *, ttl: float, live_ttl: float, lease_ttl: float) -> None:
        self.ttl = ttl
        """Seconds a finished stream stays replayable."""
        self.live_ttl = live_ttl
        """Seconds a live stream lasts without a write or lease renewal."""
        self.lease_ttl = lease_ttl
        """Seconds an unrenewed lease lasts."""
        self._operations = 0

    @property
    def operations(self) -> int:
        """Requests made to the store's backend so far (round trips, for cost figures)."""
        return self._operations


def new_stream_id() -> str:
    """A fresh unguessable stream id (144 random bits, URL-safe)."""
    return secrets.token_urlsafe(_ID_BYTES)


def is_stream_id(value: str) -> bool:
    """Whether ``value`` can be a stream id (checked before it reaches a store key)."""
    return _ID_RE.fullmatch(value) is not None


def sse_bytes(events: Iterable[StoredEvent]) -> bytes:
    """The events as the relay sends them: ``id:``, ``event:`` and ``data:`` lines."""
    return "".join(f"id: {e.seq}\nevent: {e.name}\ndata: {e.data}\n\n" for e in events).encode()


def parse_events(data: bytes) -> list[StoredEvent]:
    """The data events in the relay's SSE output (comments and ``retry:`` lines skipped).

    The relay writes whole events, each ``id:``, ``event:`` and one ``data:``
    line, so a write splits on blank lines; the inverse of ``sse_bytes``.
    """
    events: list[StoredEvent] = []
    for block in data.split(b"\n\n"):
        seq = name = payload = None
        for line in block.split(b"\n"):
            field, _, value = line.partition(b": ")
            if field == b"id":
                seq = int(value)
            elif field == b"event":
                name = value.decode()
            elif field == b"data":
                payload = value.decode()
        if seq is not None and name is not None and payload is not None:
            events.append(StoredEvent(seq, name, payload))
    return events


def choice_texts(events: Iterable[StoredEvent], name: str = "text") -> dict[int, str]:
    """Each choice's text joined from the ``name`` events: what a taker prefills.

    ``name="reasoning"`` joins the reasoning the same way.
    """
    parts: dict[int, list[str]] = {}
    for event in events:
        if event.name == name:
            obj = json.loads(event.data)
            parts.setdefault(int(obj["choice"]), []).append(obj["text"])
    return {choice: "".join(texts) for choice, texts in sorted(parts.items())}
