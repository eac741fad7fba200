"""Record and replay for tests: cassettes, ``RecordingTransport``, ``ReplayTransport``
and ``FixtureServer`` (cassettes served over real HTTP).

See ``rawsse.pytest_plugin`` for the pytest marker and fixtures built on these.
"""

from __future__ import annotations

from ._cassette import FORMAT as FORMAT
from ._cassette import Cassette as Cassette
from ._cassette import append_cassette as append_cassette
from ._cassette import dumps_cassette as dumps_cassette
from ._cassette import load_cassette as load_cassette
from ._cassette import load_cassettes as load_cassettes
from ._cassette import loads_cassette as loads_cassette
from ._cassette import loads_cassettes as loads_cassettes
from ._cassette import save_cassette as save_cassette
from ._constants import END_CLOSED as END_CLOSED
from ._constants import END_EOF as END_EOF
from ._constants import END_ERROR as END_ERROR
from ._constants import END_MISSING as END_MISSING
from ._errors import CassetteError as CassetteError
from ._recording import RecordingTransport as RecordingTransport
from ._redact import REDACTED as REDACTED
from ._redact import looks_like_secret as looks_like_secret
from ._redact import redact_headers as redact_headers
from ._redact import redact_url as redact_url
from ._replay import ReplayTransport as ReplayTransport
from ._server import FixtureServer as FixtureServer

__all__ = [
    "END_CLOSED",
    "END_EOF",
    "END_ERROR",
    "END_MISSING",
    "FORMAT",
    "REDACTED",
    "Cassette",
    "CassetteError",
    "FixtureServer",
    "RecordingTransport",
    "ReplayTransport",
    "append_cassette",
    "dumps_cassette",
    "load_cassette",
    "load_cassettes",
    "loads_cassette",
    "loads_cassettes",
    "looks_like_secret",
    "redact_headers",
    "redact_url",
    "save_cassette",
]
