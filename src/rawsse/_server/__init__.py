"""The local fixture server: cassettes served as an OpenAI-compatible API over real HTTP.

``FixtureServer`` serves a directory of cassettes (format v1; by default the
recordings shipped inside the package) on loopback as
``POST /api/v1/chat/completions``, ``GET /api/v1/models`` and
``GET /api/v1/models/{id}``.  The cassette is picked by the request body's
``model`` (or the ``X-Rawsse-Cassette`` header); every cassette has a unique id
(see ``load_fixtures``).  Its status, headers and body are replayed with the
recorded timing scaled by ``speed`` (``0``: no waiting), one HTTP chunk per
recorded chunk, each written to the socket as its time comes.  A recording that
was cut is cut again.  ``"stream": false`` gets a stream's assembled
``chat.completion`` (a cut stream: HTTP 502), and a recorded non-streaming answer
as it is; ``"stream": true`` gets a non-streaming answer as the event stream it
stands for (synthesised).

Built on asyncio streams and a small HTTP/1.1 parser (Content-Length and
chunked request bodies, ``Expect: 100-continue``, keep-alive), running in a
background thread so it serves sync code, asyncio and trio alike.  Errors are
OpenRouter-shaped JSON: ``{"error": {"code": 404, "message": ...}}``.  Pages
served from loopback may read the answers (CORS, ``OPTIONS`` preflights); other
origins only when added (``cors_origins``, ``cors_any``).  A request head must be
complete ``header_timeout`` seconds after its first byte; idle connections close
after ``idle_timeout``; at most ``max_connections`` are open.

Faults per request, for UI developers and tests (request headers):
``X-Rawsse-Cut-After: N`` sends the first N body bytes, then drops the
connection; ``X-Rawsse-Stall: N,S`` pauses S seconds before body byte N;
``X-Rawsse-Speed: X`` overrides the speed for that request (``0``, ``instant``,
``inf`` or at least ``MIN_SPEED``, 0.001; stalls up to a week).

Rooms: ``_harness`` (the event loop in a background thread, also used by the
tests' scripted server), ``_http`` (HTTP/1.1 on asyncio streams), ``_cors`` (who
may read answers), ``_limits`` (the connection cap and the quiet error log), ``_emulation``
(the OpenAI-compatible API: fixtures, models, non-streaming answers) and
``_faults`` (fault replay, planned by ``rawsse._replay_plan`` like
``ReplayTransport``); ``_fixture_server`` ties them together.
"""

from __future__ import annotations

from ._cors import ALLOWED_HEADERS as ALLOWED_HEADERS
from ._cors import LOOPBACK_ORIGINS as LOOPBACK_ORIGINS
from ._cors import CorsPolicy as CorsPolicy
from ._emulation import API_PREFIX as API_PREFIX
from ._emulation import CHAT_PATH as CHAT_PATH
from ._emulation import MODELS_PATH as MODELS_PATH
from ._emulation import load_fixtures as load_fixtures
from ._faults import parse_speed as parse_speed
from ._fixture_server import FixtureServer as FixtureServer
from ._harness import LoopThread as LoopThread
from ._limits import DEFAULT_HEADER_TIMEOUT as DEFAULT_HEADER_TIMEOUT
from ._limits import DEFAULT_IDLE_TIMEOUT as DEFAULT_IDLE_TIMEOUT
from ._limits import DESCRIPTOR_RESERVE as DESCRIPTOR_RESERVE
from ._limits import MAX_CONNECTIONS_CEILING as MAX_CONNECTIONS_CEILING
from ._limits import default_max_connections as default_max_connections
from ._prefill import Seam as Seam

__all__ = [
    "ALLOWED_HEADERS",
    "API_PREFIX",
    "CHAT_PATH",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DESCRIPTOR_RESERVE",
    "LOOPBACK_ORIGINS",
    "MAX_CONNECTIONS_CEILING",
    "MODELS_PATH",
    "CorsPolicy",
    "FixtureServer",
    "LoopThread",
    "Seam",
    "default_max_connections",
    "load_fixtures",
    "parse_speed",
]
