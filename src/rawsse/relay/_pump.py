"""The I/O between an upstream ``AsyncStream`` and a ``RelayEncoder``.

``Pump.read`` runs in a task of its own and reads upstream: each read's events
go into a bounded queue as one batch.  ``Pump.next_bytes`` runs where the bytes
are written: it waits for the next batches or the encoder's deadline
(heartbeat, coalescing), whichever comes first, and returns what to send.  The
reader is never cancelled to make a heartbeat (cancelling an HTTP read closes
the connection); only stopping the relay cancels it.

Buffering is bounded: when the writer stops taking bytes (a client that stops
reading), at most ``max_queued`` upstream reads (each at most 64 KiB, httpx's
read size) wait in the queue; then the reader stops reading upstream, and TCP
flow control holds the rest upstream.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import anyio

from .._async_client import AsyncStream
from .._chat_events import ChatEvent
from ._encoder import RelayEncoder

__all__ = ["DEFAULT_MAX_QUEUED", "Pump"]

DEFAULT_MAX_QUEUED = 4
"""Upstream reads decoded and not yet sent, per stream, before reading upstream pauses."""


def _ready(stream: AsyncStream) -> list[ChatEvent]:
    """The events the stream decoded from its last read and not yet returned.

    ``AsyncStream`` hands out one event per ``__anext__``; taking the rest of the
    read at once lets the relay encode and send one read as one write.
    """
    batch: list[ChatEvent] = stream._batch
    pos: int = stream._pos
    if pos >= len(batch):
        return []
    stream._pos = len(batch)
    return batch[pos:]


class Pump:
    """One relayed stream: a reader task (``read``) and the writer's ``next_bytes``."""

    def __init__(
        self,
        stream: AsyncStream,
        encoder: RelayEncoder,
        *,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        self.stream = stream
        self.encoder = encoder
        self._max_queued = max_queued
        self._queue: deque[list[ChatEvent]] = deque()
        self._end: tuple[str, Any] | None = None
        self._arrived = anyio.Event()
        self._room = anyio.Event()
        self._scope = anyio.CancelScope()
        self.stopped = anyio.Event()
        """Set when the reader has ended and the upstream stream is closed."""

    # -- the reader task ---------------------------------------------------------------

    async def read(self) -> None:
        """Read upstream until its end, an error, or ``stop()``; always closes it."""
        stream = self.stream
        try:
            with self._scope:
                try:
                    while True:
                        event = await stream.__anext__()
                        batch = [event]
                        batch += _ready(stream)
                        await self._put(batch)
                except StopAsyncIteration:
                    self._end = ("close", stream.result)
                except Exception as exc:  # reported to the browser as the error event
                    self._end = ("fail", exc)
            if self._end is None:
                self._end = ("cancel", None)
        finally:
            with anyio.CancelScope(shield=True):
                await stream.close()
            self._arrived.set()
            self.stopped.set()

    async def _put(self, batch: list[ChatEvent]) -> None:
        while len(self._queue) >= self._max_queued:
            self._room = anyio.Event()
            await self._room.wait()
        self._queue.append(batch)
        self._arrived.set()

    def stop(self) -> None:
        """Cancel the reader (it closes the upstream connection on its way out)."""
        self._scope.cancel()

    # -- the writer ------------------------------------------------------------------

    async def next_bytes(self) -> bytes | None:
        """The next bytes to send (the encoded batches, or what a deadline made due),
        or None once the terminal event was returned."""
        encoder = self.encoder
        while True:
            if encoder.closed:
                return None
            queue = self._queue
            if queue:
                now = anyio.current_time()
                if len(queue) == 1:
                    events = queue.popleft()
                else:
                    events = [e for batch in queue for e in batch]
                    queue.clear()
                self._room.set()
                data = encoder.feed_many(events, now)
                data += encoder.poll(now)
                if data:
                    return data
                continue
            end = self._end
            if end is not None:
                now = anyio.current_time()
                if end[0] == "close":
                    return encoder.close(end[1], now)
                if end[0] == "fail":
                    return encoder.fail(end[1], now)
                return encoder.cancel(now, partial=self.stream.result)
            deadline = encoder.deadline()
            self._arrived = arrived = anyio.Event()
            if deadline is None:
                await arrived.wait()
            else:
                with anyio.CancelScope(deadline=deadline):
                    await arrived.wait()
            data = encoder.poll(anyio.current_time())
            if data:
                return data


_tasks: set[Any] = set()  # strong references: asyncio keeps only weak ones to its tasks


def spawn(function: Any) -> None:
    """Run ``await function()`` in a task that belongs to no task group.

    ``relay_stream`` is an async iterator that a framework may abandon between two
    items; a task group held across ``yield`` would then be exited in another task.
    The reader task therefore lives outside, and the iterator's ``finally`` stops
    it and waits for it (``Pump.stop``, ``Pump.stopped``).  ``function`` must not
    raise (``Pump.read`` reports every error as the terminal event).
    """
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: trio, anyio's other backend
        import trio

        trio.lowlevel.spawn_system_task(function)
        return
    task = loop.create_task(function())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
