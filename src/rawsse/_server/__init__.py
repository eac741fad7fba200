"""The local fixture server: cassettes served as an OpenAI-compatible API over real HTTP.

``FixtureServer`` serves a directory of cassettes (format v1; by default the
recordings shipped inside the package) on loopback as
``POST /api/v1/chat/completions`` and ``GET /api/v1/models``.  The cassette is
picked by the request body's ``model`` (or the ``X-Rawsse-Cassette`` header);
its status, headers and body are replayed with the recorded timing scaled by
``speed`` (``0``: no waiting), one HTTP chunk per recorded chunk, each written
to the socket as its time comes.  A recording that was cut is cut again.

Built on asyncio streams and a small HTTP/1.1 parser (Content-Length and
chunked request bodies, ``Expect: 100-continue``, keep-alive), running in a
background thread so it serves sync code, asyncio and trio alike.  Errors are
OpenRouter-shaped JSON: ``{"error": {"code": 404, "message": ...}}``.  Every
response carries CORS headers and ``OPTIONS`` answers preflights, so a page on
another origin can call it.

Faults per request, for UI developers and tests (request headers):
``X-Rawsse-Cut-After: N`` sends the first N body bytes, then drops the
connection; ``X-Rawsse-Stall: N,S`` pauses S seconds before body byte N;
``X-Rawsse-Speed: X`` overrides the speed for that request.

Rooms: ``_harness`` (the event loop in a background thread, also used by the
tests' scripted server), ``_http`` (HTTP/1.1 on asyncio streams), ``_emulation``
(the OpenAI-compatible API: fixtures, models, non-streaming answers) and
``_faults`` (fault replay, planned by ``rawsse._replay_plan`` like
``ReplayTransport``); ``_fixture_server`` ties them together.
"""

from __future__ import annotations

from ._emulation import API_PREFIX as API_PREFIX
from ._emulation import CHAT_PATH as CHAT_PATH
from ._emulation import MODELS_PATH as MODELS_PATH
from ._emulation import load_fixtures as load_fixtures
from ._faults import parse_speed as parse_speed
from ._fixture_server import FixtureServer as FixtureServer
from ._harness import LoopThread as LoopThread
from ._prefill import Seam as Seam

__all__ = [
    "API_PREFIX",
    "CHAT_PATH",
    "MODELS_PATH",
    "FixtureServer",
    "LoopThread",
    "Seam",
    "load_fixtures",
    "parse_speed",
]
