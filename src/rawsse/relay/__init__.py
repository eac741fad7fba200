"""Serve chat streams to browsers: ``RelayApp`` (ASGI), ``relay_stream``, ``RelayEncoder``.

Layers as in the rest of rawsse: ``RelayEncoder`` turns chat events into the
browser's SSE bytes without I/O; ``relay_stream`` moves an ``AsyncStream`` through
it for a framework's streaming response; ``RelayApp`` is a complete ASGI app with
the owner's policy (key, models, parameters, limits, authorization, CORS).

Resumable streams: ``RelayApp(..., store=MemoryStore())`` (one process) or
``store=RedisStore(url)`` (shared by instances) keeps each stream, so a browser
can reconnect (``GET /chat/{stream_id}`` with ``Last-Event-ID``) and get the rest.
"""

from ._app import Authorize as Authorize
from ._app import RelayApp as RelayApp
from ._encoder import EVENT_NAMES as EVENT_NAMES
from ._encoder import RelayEncoder as RelayEncoder
from ._memory_store import MemoryStore as MemoryStore
from ._policy import DEFAULT_MAX_BODY as DEFAULT_MAX_BODY
from ._policy import DEFAULT_PARAMS as DEFAULT_PARAMS
from ._redis_store import RedisStore as RedisStore
from ._resumable import DEFAULT_LINGER as DEFAULT_LINGER
from ._store import Renewal as Renewal
from ._store import StoredEvent as StoredEvent
from ._store import StreamInfo as StreamInfo
from ._store import StreamStore as StreamStore
from ._store_errors import LeaseLost as LeaseLost
from ._store_errors import StoreError as StoreError
from ._store_errors import StoreFull as StoreFull
from ._store_errors import StoreUnavailable as StoreUnavailable
from ._store_errors import StreamNotFound as StreamNotFound
from ._store_spec import add_store_arguments as add_store_arguments
from ._store_spec import open_store as open_store
from ._store_spec import store_options as store_options
from ._stream import relay_stream as relay_stream

__all__ = [
    "DEFAULT_LINGER",
    "DEFAULT_MAX_BODY",
    "DEFAULT_PARAMS",
    "EVENT_NAMES",
    "Authorize",
    "LeaseLost",
    "MemoryStore",
    "RedisStore",
    "RelayApp",
    "RelayEncoder",
    "Renewal",
    "StoreError",
    "StoreFull",
    "StoreUnavailable",
    "StoredEvent",
    "StreamInfo",
    "StreamNotFound",
    "StreamStore",
    "add_store_arguments",
    "open_store",
    "relay_stream",
    "store_options",
]
