"""Serve chat streams to browsers: ``RelayApp`` (ASGI), ``relay_stream``, ``RelayEncoder``.

Layers as in the rest of rawsse: ``RelayEncoder`` turns chat events into the
browser's SSE bytes without I/O; ``relay_stream`` moves an ``AsyncStream`` through
it for a framework's streaming response; ``RelayApp`` is a complete ASGI app with
the owner's policy (key, models, parameters, limits, authorization, CORS).
"""

from ._app import Authorize as Authorize
from ._app import RelayApp as RelayApp
from ._encoder import EVENT_NAMES as EVENT_NAMES
from ._encoder import RelayEncoder as RelayEncoder
from ._policy import DEFAULT_MAX_BODY as DEFAULT_MAX_BODY
from ._policy import DEFAULT_PARAMS as DEFAULT_PARAMS
from ._stream import relay_stream as relay_stream

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_PARAMS",
    "EVENT_NAMES",
    "Authorize",
    "RelayApp",
    "RelayEncoder",
    "relay_stream",
]
