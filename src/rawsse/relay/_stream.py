"""``relay_stream``: an ``AsyncStream`` as the browser's SSE bytes, for framework responses."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from .._async_client import AsyncStream
from ._encoder import RelayEncoder
from ._pump import DEFAULT_MAX_QUEUED, Pump, spawn

__all__ = ["relay_stream"]

_STOP_WAIT = 5.0  # seconds to wait for the reader to close upstream when the consumer leaves


async def relay_stream(
    stream: AsyncStream,
    *,
    heartbeat: float | None = 15.0,
    coalesce: float = 0.0,
    max_queued: int = DEFAULT_MAX_QUEUED,
) -> AsyncIterator[bytes]:
    """The relay's SSE bytes for ``stream`` (opened or not), for a streaming response.

    Yields the opening comment at once, then one chunk per upstream read (every
    event of the read encoded together), heartbeats after ``heartbeat`` seconds of
    silence, and ends with exactly one terminal event (``done`` or ``error``): an
    upstream failure never raises here.  Closing the iterator (``aclose()``, task
    cancellation, or the garbage collector finalizing an abandoned one) closes the
    upstream stream at once.  See ``RelayEncoder`` for ``heartbeat`` and
    ``coalesce``; ``max_queued`` bounds the upstream reads waiting for a slow consumer.
    """
    encoder = RelayEncoder(anyio.current_time(), heartbeat=heartbeat, coalesce=coalesce)
    pump: Pump | None = None
    try:
        yield encoder.open(anyio.current_time())
        pump = Pump(stream, encoder, max_queued=max_queued)
        spawn(pump.read)
        while True:
            data = await pump.next_bytes()
            if data is None:
                return
            yield data
    finally:
        with anyio.CancelScope(shield=True):
            if pump is None:
                await stream.close()
            else:
                pump.stop()
                with anyio.move_on_after(_STOP_WAIT):
                    await pump.stopped.wait()
