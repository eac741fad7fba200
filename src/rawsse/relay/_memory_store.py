"""``MemoryStore``: resumable streams inside one process.

Bounded two ways.  A finished stream lives ``ttl`` seconds; a live stream
that nobody wrote to or renewed for ``live_ttl`` seconds is dropped (its
followers get ``StreamNotFound``).  And the stored bytes (request bodies plus
event names and data, UTF-8) stay under ``max_bytes``: when an append or a
new stream goes over, finished streams are evicted oldest-finished first.
Live streams are never evicted, since their followers are still reading: while
live streams alone hold ``max_bytes`` or more, they keep growing and
``create`` raises ``StoreFull`` (a ``StoreUnavailable``, so the relay serves
new requests as it does with an unreachable store: non-resumable, or refused
when it fails closed).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Sequence

import anyio

from ._store import Renewal, StoreBase, StoredEvent, StreamInfo, new_stream_id
from ._store_errors import LeaseLost, StoreFull, StreamNotFound

__all__ = ["MemoryStore"]


class _Stream:
    __slots__ = (
        "cancel_event",
        "cancelled",
        "changed",
        "events",
        "expires",
        "finished",
        "followers",
        "gone",
        "holder",
        "lease_expires",
        "owner",
        "request",
        "size",
    )

    def __init__(self, request: bytes, owner: str | None, holder: str, now: float) -> None:
        self.request = request
        self.owner = owner
        self.events: list[StoredEvent] = []
        self.size = len(request)
        self.finished = False
        self.followers = 0
        self.cancelled = False
        self.gone = False
        self.holder: str | None = holder
        self.lease_expires = now
        self.expires = now
        # Replaced after every change: followers wait on the one they saw.
        self.changed = anyio.Event()
        self.cancel_event = anyio.Event()

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


class MemoryStore(StoreBase):
    """Resumable streams in this process's memory (the embedded default)."""

    def __init__(
        self,
        *,
        ttl: float = 600.0,
        live_ttl: float = 3600.0,
        max_bytes: int = 256 * 1024 * 1024,
        lease_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Keep finished streams ``ttl`` s and idle live ones ``live_ttl`` s, in ``max_bytes``."""
        super().__init__(ttl=ttl, live_ttl=live_ttl, lease_ttl=lease_ttl)
        self.max_bytes = max_bytes
        self._clock = clock
        self._streams: dict[str, _Stream] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        """Finished stream ids, oldest finished first: eviction and expiry order."""
        self._bytes = 0

    @property
    def size(self) -> int:
        """Bytes held now (request bodies, event names and data)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._streams)

    async def create(self, request: bytes, *, owner: str | None, holder: str) -> str:
        """Start a stream whose lease ``holder`` holds; return its new id."""
        self._operations += 1
        now = self._clock()
        self._expire(now)
        self._evict(len(request))
        if self._bytes + len(request) > self.max_bytes:
            raise StoreFull(f"live streams fill the store ({self._bytes} of {self.max_bytes} B)")
        stream_id = new_stream_id()
        stream = _Stream(request, owner, holder, now)
        stream.lease_expires = now + self.lease_ttl
        stream.expires = now + self.live_ttl
        self._streams[stream_id] = stream
        self._bytes += stream.size
        return stream_id

    async def info(self, stream_id: str) -> StreamInfo:
        """The stream's metadata; ``StreamNotFound`` when unknown or expired."""
        self._operations += 1
        now = self._clock()
        stream = self._get(stream_id, now)
        holder = stream.holder if stream.lease_expires > now else None
        return StreamInfo(
            stream_id=stream_id,
            owner=stream.owner,
            request=stream.request,
            last_seq=_last(stream.events),
            finished=stream.finished,
            cancelled=stream.cancelled,
            holder=holder,
        )

    async def append(self, stream_id: str, holder: str, events: Sequence[StoredEvent]) -> None:
        """Store events if ``holder`` holds the lease; else ``LeaseLost``."""
        self._operations += 1
        self._write(stream_id, holder, events, final=False)

    async def finish(self, stream_id: str, holder: str, events: Sequence[StoredEvent]) -> None:
        """``append`` whose last event is terminal; frees the lease and starts the TTL."""
        self._operations += 1
        self._write(stream_id, holder, events, final=True)

    async def read(self, stream_id: str, after: int = 0) -> list[StoredEvent]:
        """The events stored after position ``after``, now."""
        self._operations += 1
        stream = self._get(stream_id, self._clock())
        return _after(stream.events, after)

    async def follow(self, stream_id: str, after: int = 0) -> AsyncGenerator[StoredEvent, None]:
        """Every event after ``after``, then live ones, ending after the terminal event."""
        self._operations += 1
        stream = self._get(stream_id, self._clock())
        stream.followers += 1
        try:
            position = after
            while True:
                # Read the wake-up event before the list, so no append falls between.
                changed = stream.changed
                fresh = _after(stream.events, position)
                for event in fresh:
                    yield event
                if fresh:
                    position = fresh[-1].seq
                if stream.finished and position >= _last(stream.events):
                    return
                if stream.gone:
                    raise StreamNotFound("stream expired while followed", stream_id=stream_id)
                if not fresh:
                    await changed.wait()
        finally:
            stream.followers -= 1

    async def followed(self, stream_id: str) -> bool:
        """Whether a follower is reading the stream now."""
        self._operations += 1
        return self._get(stream_id, self._clock()).followers > 0

    async def acquire_lease(self, stream_id: str, holder: str) -> bool:
        """Take the lease if it is free or expired."""
        self._operations += 1
        now = self._clock()
        stream = self._get(stream_id, now)
        if stream.finished or (stream.holder is not None and stream.lease_expires > now):
            return False
        stream.holder = holder
        stream.lease_expires = now + self.lease_ttl
        stream.expires = now + self.live_ttl
        return True

    async def renew_lease(self, stream_id: str, holder: str) -> Renewal:
        """Extend ``holder``'s lease if it holds it; and the stream's flags."""
        self._operations += 1
        now = self._clock()
        stream = self._get(stream_id, now)
        held = not stream.finished and self._take(stream, holder, now)
        if held:
            stream.expires = now + self.live_ttl
        return Renewal(held=held, cancelled=stream.cancelled, followed=stream.followers > 0)

    async def release_lease(self, stream_id: str, holder: str) -> None:
        """Give the lease up now (only if ``holder`` holds it)."""
        self._operations += 1
        stream = self._streams.get(stream_id)
        if stream is not None and stream.holder == holder:
            stream.holder = None

    async def cancel(self, stream_id: str) -> None:
        """Ask the producer to stop."""
        self._operations += 1
        stream = self._get(stream_id, self._clock())
        stream.cancelled = True
        stream.cancel_event.set()

    async def wait_cancelled(self, stream_id: str, within: float) -> bool:
        """Wait up to ``within`` seconds for a ``cancel`` (True at once if there was one)."""
        stream = self._get(stream_id, self._clock())
        with anyio.move_on_after(within):
            await stream.cancel_event.wait()
        return stream.cancel_event.is_set()

    async def aclose(self) -> None:
        """Drop every stream."""
        for stream in self._streams.values():
            stream.gone = True
            stream.notify()
        self._streams.clear()
        self._finished.clear()
        self._bytes = 0

    def _get(self, stream_id: str, now: float) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is not None and stream.expires <= now:
            self._drop(stream_id)
            stream = None
        if stream is None:
            raise StreamNotFound("unknown or expired stream", stream_id=stream_id)
        return stream

    def _write(
        self, stream_id: str, holder: str, events: Sequence[StoredEvent], *, final: bool
    ) -> None:
        now = self._clock()
        stream = self._get(stream_id, now)
        if stream.finished:
            raise LeaseLost("the stream has finished", stream_id=stream_id)
        if not self._take(stream, holder, now):
            raise LeaseLost("the lease is held by another producer", stream_id=stream_id)
        last = _last(stream.events)
        fresh = [event for event in events if event.seq > last]
        for expected, event in enumerate(fresh, last + 1):
            if event.seq != expected:
                raise ValueError(f"event {event.seq} where {expected} was due")
        stream.events.extend(fresh)
        added = sum(len(event.name) + len(event.data.encode()) for event in fresh)
        stream.size += added
        self._bytes += added
        if final:
            stream.finished = True
            stream.holder = None
            stream.expires = now + self.ttl
            self._finished[stream_id] = None
        else:
            stream.expires = now + self.live_ttl
        stream.notify()
        self._evict(0)

    def _take(self, stream: _Stream, holder: str, now: float) -> bool:
        """Extend ``holder``'s lease, or take it back if it lapsed and nobody took it."""
        if stream.holder != holder and stream.holder is not None and stream.lease_expires > now:
            return False
        stream.holder = holder
        stream.lease_expires = now + self.lease_ttl
        return True

    def _expire(self, now: float) -> None:
        for stream_id in list(self._finished):
            if self._streams[stream_id].expires > now:
                break
            self._drop(stream_id)
        expired = [i for i, s in self._streams.items() if not s.finished and s.expires <= now]
        for stream_id in expired:
            self._drop(stream_id)

    def _evict(self, incoming: int) -> None:
        while self._finished and self._bytes + incoming > self.max_bytes:
            self._drop(next(iter(self._finished)))

    def _drop(self, stream_id: str) -> None:
        stream = self._streams.pop(stream_id)
        self._finished.pop(stream_id, None)
        self._bytes -= stream.size
        stream.gone = True
        stream.notify()


def _after(events: list[StoredEvent], position: int) -> list[StoredEvent]:
    """Events with ``seq > position``; seqs are consecutive, so this is a slice."""
    if not events:
        return []
    start = max(position - events[0].seq + 1, 0)
    return events[start:]


def _last(events: list[StoredEvent]) -> int:
    return events[-1].seq if events else 0
