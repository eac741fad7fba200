"""What goes wrong with the store behind resumable relay streams.

Errors (all ``RawSSEError``)::

    StoreError                  a store operation failed (``stream_id`` where known)
    ├── StoreUnavailable        the store cannot be reached or answered too slowly
    │   └── StoreFull           a bounded store refused a new stream
    ├── StreamNotFound          unknown or expired id, or events after the position are gone
    └── LeaseLost               a write by a producer that no longer holds the lease
"""

from __future__ import annotations

from .._errors import RawSSEError

__all__ = ["LeaseLost", "StoreError", "StoreFull", "StoreUnavailable", "StreamNotFound"]


class StoreError(RawSSEError):
    """A store operation failed."""

    def __init__(self, message: str, *, stream_id: str | None = None) -> None:
        super().__init__(message)
        self.stream_id = stream_id


class StoreUnavailable(StoreError):
    """The store cannot be reached, or did not answer in time."""


class StoreFull(StoreUnavailable):
    """A bounded store refused a new stream (its live streams alone fill it)."""


class StreamNotFound(StoreError):
    """Unknown or expired stream id, or the events after the position are no longer stored."""


class LeaseLost(StoreError):
    """A producer wrote without holding the stream's lease, or after the stream finished."""
