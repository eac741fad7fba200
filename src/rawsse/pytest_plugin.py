"""The rawsse pytest plugin: replay a cassette into a test, or record it once live.

A test names its cassette with ``@pytest.mark.rawsse_cassette("name")`` (default:
the test function's name) and asks for ``rawsse_client`` (a ``rawsse.Client``),
``rawsse_async_client`` (a ``rawsse.AsyncClient``), or the bare httpx transports
``rawsse_transport`` / ``rawsse_async_transport``.  Keyword arguments of the
marker go to ``ReplayTransport`` (``chunking="byte"``, ``speed=10``,
``cut_after=100``...), except two that say where a recording comes from:
``base_url=`` (another OpenAI-compatible endpoint) and ``api_key_env=`` (the
environment variable holding that endpoint's key).

Cassettes live in ``cassettes/`` next to the test file, or in the directory
given by the ini option ``rawsse_cassette_dir`` (relative to the rootdir).  A
missing cassette fails the test at setup, naming the file; with
``--rawsse-record`` it is recorded live instead.  The recording client follows
``rawsse.Client``'s rule: ``$OPENROUTER_API_KEY`` goes to OpenRouter's host only,
never to another ``base_url``; a marker's ``api_key_env="MY_KEY"`` sends
``$MY_KEY`` instead; an endpoint that needs no key gets none.  Every request a
test makes is kept, in order, in its one cassette file, and replayed in that
order.  Nothing here ever touches the network while replaying.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    import httpx

    from ._async_client import AsyncClient
    from ._cassette import Cassette
    from ._client import Client

__all__ = [
    "pytest_addoption",
    "pytest_configure",
    "rawsse_async_client",
    "rawsse_async_transport",
    "rawsse_cassette",
    "rawsse_cassette_path",
    "rawsse_cassettes",
    "rawsse_client",
    "rawsse_transport",
]

MARKER = "rawsse_cassette"
_SOURCE_OPTIONS = ("base_url", "api_key_env")
"""Marker options that say where a recording comes from (not replay options)."""
REPLAY_KEY = "rawsse-replay-no-key"
"""The API key replay clients send: a placeholder, never a real key."""
_CHAT_SUFFIX = "/chat/completions"
_C = TypeVar("_C")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rawsse", "rawsse cassettes")
    group.addoption(
        "--rawsse-record",
        action="store_true",
        default=False,
        help="record missing rawsse cassettes live (OPENROUTER_API_KEY for OpenRouter; "
        "the marker's base_url= and api_key_env= for another endpoint)",
    )
    parser.addini(
        "rawsse_cassette_dir",
        "directory of rawsse cassettes, relative to the rootdir "
        "(default: cassettes/ next to each test file)",
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(name, base_url=None, api_key_env=None, **replay_options): the rawsse "
        "cassette this test replays (options go to rawsse.testing.ReplayTransport); "
        "base_url and api_key_env say where --rawsse-record records it from",
    )


# -- which cassette -------------------------------------------------------------------


def _marker(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    mark = request.node.get_closest_marker(MARKER)
    node: Any = request.node
    default = str(getattr(node, "originalname", None) or node.name)
    if mark is None:
        return default, {}
    if len(mark.args) > 1:
        raise pytest.UsageError(f"@pytest.mark.{MARKER} takes one cassette name: {mark.args!r}")
    name = str(mark.args[0]) if mark.args else default
    key_env = mark.kwargs.get("api_key_env")
    if key_env is not None and (not isinstance(key_env, str) or not key_env):
        raise pytest.UsageError(
            f"@pytest.mark.{MARKER}: api_key_env names an environment variable: {key_env!r}"
        )
    return name, dict(mark.kwargs)


@pytest.fixture
def rawsse_cassette_path(request: pytest.FixtureRequest) -> Path:
    """The file of this test's cassette (it may not exist yet)."""
    name, _ = _marker(request)
    filename = name if name.endswith(".jsonl") else f"{name}.jsonl"
    configured = str(request.config.getini("rawsse_cassette_dir") or "")
    if configured:
        base = Path(request.config.rootpath) / configured
    else:
        base = Path(request.node.path).parent / "cassettes"
    return base / filename


def _recording(request: pytest.FixtureRequest, path: Path) -> bool:
    """Whether this test records live: the cassette is missing and recording is on."""
    from ._constants import API_KEY_ENV

    if path.is_file():
        return False
    if not request.config.getoption("--rawsse-record"):
        pytest.fail(
            f"rawsse: cassette not found: {path}\n"
            f"Record it once with `pytest --rawsse-record` ({API_KEY_ENV} for OpenRouter), "
            f"or fix the name in @pytest.mark.{MARKER}(...). "
            "rawsse never falls back to the network.",
            pytrace=False,
        )
    return True


def _recording_key(request: pytest.FixtureRequest, path: Path) -> str | None:
    """The ``api_key`` a recording client gets: the marker's variable, else None (the
    client then reads ``$OPENROUTER_API_KEY`` for OpenRouter's host only)."""
    _, options = _marker(request)
    key_env = options.get("api_key_env")
    if key_env is None:
        return None
    key = os.environ.get(key_env)
    if not key:
        pytest.fail(
            f"rawsse: --rawsse-record needs {key_env} (named by api_key_env=) "
            f"to record the missing cassette {path}",
            pytrace=False,
        )
    return key


def _client(
    request: pytest.FixtureRequest,
    transport: Any,
    client_class: Callable[..., _C],
    http: httpx.Client | httpx.AsyncClient,
) -> _C:
    """A ``client_class`` over ``http`` (no retries), with ``REPLAY_KEY`` when
    ``transport`` replays, else with the key to record with."""
    from ._constants import API_KEY_ENV
    from ._errors import ConfigurationError

    base_url = _base_url(request, transport)

    def make(api_key: str | None) -> _C:
        return client_class(api_key=api_key, base_url=base_url, http_client=http, retries=0)

    if hasattr(transport, "cassettes"):
        return make(REPLAY_KEY)
    path = _path_of(transport)
    try:
        return make(_recording_key(request, path))
    except ConfigurationError:  # OpenRouter's URL and no key anywhere
        pytest.fail(
            f"rawsse: --rawsse-record needs {API_KEY_ENV} to record the missing cassette {path}",
            pytrace=False,
        )


@pytest.fixture
def rawsse_cassettes(request: pytest.FixtureRequest, rawsse_cassette_path: Path) -> list[Cassette]:
    """Every exchange of this test's cassette, in order (fails the test when it is missing)."""
    from ._cassette import load_cassettes

    if not rawsse_cassette_path.is_file():
        _recording(request, rawsse_cassette_path)
        pytest.fail(f"rawsse: cassette not recorded yet: {rawsse_cassette_path}", pytrace=False)
    return load_cassettes(rawsse_cassette_path)


@pytest.fixture
def rawsse_cassette(rawsse_cassettes: list[Cassette]) -> Cassette:
    """This test's cassette, loaded: its first exchange (``rawsse_cassettes`` has them all)."""
    return rawsse_cassettes[0]


def _replay(request: pytest.FixtureRequest, path: Path) -> Any:
    from ._replay import ReplayTransport

    _, options = _marker(request)
    for name in _SOURCE_OPTIONS:
        options.pop(name, None)
    return ReplayTransport(path, **options)


def _base_url(request: pytest.FixtureRequest, transport: Any) -> str:
    """Where the client sends requests: the recorded URL (replay) or the live one."""
    from ._constants import DEFAULT_BASE_URL

    _, options = _marker(request)
    if "base_url" in options:
        return str(options["base_url"])
    cassettes = getattr(transport, "cassettes", None)
    if not cassettes:
        return DEFAULT_BASE_URL
    url: str = cassettes[0].url.split("?", 1)[0]
    return url[: -len(_CHAT_SUFFIX)] if url.endswith(_CHAT_SUFFIX) else url


# -- transports -----------------------------------------------------------------------


@pytest.fixture
def rawsse_transport(request: pytest.FixtureRequest, rawsse_cassette_path: Path) -> Iterator[Any]:
    """An httpx transport for ``httpx.Client``: replays the cassette, or records it live."""
    import httpx

    from ._recording import RecordingTransport

    if _recording(request, rawsse_cassette_path):
        transport: httpx.BaseTransport = RecordingTransport(
            httpx.HTTPTransport(), rawsse_cassette_path, directory=False
        )
    else:
        transport = _replay(request, rawsse_cassette_path)
    yield transport
    transport.close()


@pytest.fixture
def rawsse_async_transport(
    request: pytest.FixtureRequest, rawsse_cassette_path: Path
) -> Iterator[Any]:
    """An httpx transport for ``httpx.AsyncClient``: replays the cassette, or records it live."""
    import httpx

    from ._recording import RecordingTransport

    if _recording(request, rawsse_cassette_path):
        # No kept-alive connections: each one closes with its response, so nothing is
        # left for this (sync) fixture to close on an event loop it does not own.
        live = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
        yield RecordingTransport(live, rawsse_cassette_path, directory=False)
    else:
        yield _replay(request, rawsse_cassette_path)


# -- clients --------------------------------------------------------------------------


@pytest.fixture
def rawsse_client(request: pytest.FixtureRequest, rawsse_transport: Any) -> Iterator[Client]:
    """A ``rawsse.Client`` wired to this test's cassette (no retries)."""
    import httpx

    from ._client import Client

    http = httpx.Client(transport=rawsse_transport, timeout=None)
    client = _client(request, rawsse_transport, Client, http)
    yield client
    client.close()
    http.close()


@pytest.fixture
def rawsse_async_client(request: pytest.FixtureRequest, rawsse_async_transport: Any) -> AsyncClient:
    """A ``rawsse.AsyncClient`` wired to this test's cassette (asyncio or trio; no retries)."""
    import httpx

    from ._async_client import AsyncClient

    # Neither transport holds a resource that outlives its responses, so the
    # client needs no ``aclose`` (which this sync fixture could not await).
    http = httpx.AsyncClient(transport=rawsse_async_transport, timeout=None)
    return _client(request, rawsse_async_transport, AsyncClient, http)


def _path_of(transport: Any) -> Path:
    return Path(transport.path)
