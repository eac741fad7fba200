"""``relay_stream``: an ``AsyncStream`` as the browser's SSE bytes, for framework responses."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from .._async_client import AsyncStream
from ._encoder import RelayEncoder
from ._pump import DEFAULT_MAX_BUFFER, Pump, spawn

__all__ = ["relay_stream"]

_STOP_WAIT = 5.0  # seconds to wait for the reader to close upstream when the consumer leaves


async def relay_stream(
    stream: AsyncStream,
    *,
    heartbeat: float | None = 15.0,
    coalesce: float = 0.0,
    max_buffer: int = DEFAULT_MAX_BUFFER,
) -> AsyncIterator[bytes]:
    """The relay's SSE bytes for ``stream`` (opened or not), for a streaming response.

    Yields the opening comment at once, then one chunk for all that arrived from
    upstream since the last one (a burst of events is one chunk), heartbeats
    after ``heartbeat`` seconds of silence, and exactly one terminal event
    (``done`` or ``error``) at the end: an upstream failure never raises here.
    Closing the iterator (``aclose()``, task cancellation, or the garbage
    collector finalizing an abandoned one) closes the upstream stream at once.
    See ``RelayEncoder`` for ``heartbeat`` and ``coalesce``; ``max_buffer``
    bounds the upstream bytes waiting for a slow consumer.
    """
    encoder = RelayEncoder(anyio.current_time(), heartbeat=heartbeat, coalesce=coalesce)
    pump: Pump | None = None
    try:
        yield encoder.open(anyio.current_time())
        pump = Pump(stream, encoder, max_buffer=max_buffer)
        spawn(pump.read)
        spawn(pump.time)
        while True:
            data = await pump.next_bytes()
            if data is None:
                return
            yield data
    finally:
        with anyio.CancelScope(shield=True):
            if pump is not None:
                pump.stop()
                with anyio.move_on_after(_STOP_WAIT):
                    await pump.wait_stopped()
            await stream.close()  # marks an unfinished stream cancelled
