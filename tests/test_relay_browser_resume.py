"""Reloading the demo page mid-answer in real headless Chromium, served by the real
``RelayApp`` with a store (``MemoryStore``, and ``RedisStore`` on a real ``redis-server``)
under uvicorn, over the fixture server with recorded timing (at half speed, so the
reload lands mid-answer even on a busy machine).

The answer continues where it was: the page shows exactly the recording's text,
nothing doubled, and upstream was asked once (the stream was followed again, not
generated again).  Screenshots go to ``tests/artifacts/`` (not in git).
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from rawsse import AsyncClient
from rawsse.relay import MemoryStore, RedisStore, RelayApp, StreamStore

from .redis_server import RedisServer, redis_server
from .relay_helpers import FixtureServer, parse_events, serve_asgi
from .test_relay_browser import (
    CHROMIUM,
    ENDED,
    RECORDINGS,
    model_of,
    recorded_text,
    screenshot,
    shown,
)
from .test_relay_browser import browser as browser

__all__ = ["browser", "redis_server"]  # the fixtures, imported for pytest to find

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not CHROMIUM.exists():
    pytest.skip("/usr/bin/chromium is absent (Debian package `chromium`)", allow_module_level=True)

SPEED = 0.5  # the 3.5 s recording takes 7 s
OUTPUT = "document.getElementById('output').textContent"


@pytest.fixture(scope="module")
def upstream_log() -> io.StringIO:
    return io.StringIO()


@pytest.fixture(scope="module")
def upstream(
    tmp_path_factory: pytest.TempPathFactory, upstream_log: io.StringIO
) -> Iterator[FixtureServer]:
    folder = tmp_path_factory.mktemp("reload-cassettes")
    shutil.copy(RECORDINGS / "demo.jsonl", folder / "demo.jsonl")
    with FixtureServer(folder, speed=SPEED, log=upstream_log) as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(request: pytest.FixtureRequest, store_kind: str) -> Callable[[], StreamStore]:
    if store_kind == "memory":
        return MemoryStore
    server: RedisServer = request.getfixturevalue("redis_server")
    return lambda: RedisStore(server.url, timeout=2.0, block=0.5)


@pytest.fixture
def relay_url(upstream: FixtureServer, make_store: Callable[[], StreamStore]) -> Iterator[str]:
    made: list[tuple[AsyncClient, StreamStore]] = []

    def make() -> RelayApp:
        client = AsyncClient(base_url=upstream.base_url, api_key="", retries=0)
        store = make_store()
        made.append((client, store))
        return RelayApp(client, models=upstream.models, demo=True, heartbeat=1.0, store=store)

    async def stop() -> None:
        for client, store in made:
            await client.aclose()
            await store.aclose()

    with serve_asgi(make, on_stop=stop) as url:
        yield url


def completions(log: io.StringIO) -> int:
    return sum("chat/completions" in line for line in log.getvalue().splitlines())


def test_reloading_mid_answer_continues_the_same_stream(
    browser: Any,
    relay_url: str,
    upstream: FixtureServer,
    upstream_log: io.StringIO,
    store_kind: str,
) -> None:
    want = recorded_text(upstream, "demo")
    before = completions(upstream_log)
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(relay_url)
        page.wait_for_selector("body[data-ready=true]")
        page.select_option("[data-testid=model]", model_of(upstream, "demo"))
        page.fill("[data-testid=prompt]", "hello")
        page.click("[data-testid=send]")
        page.wait_for_function(f"{OUTPUT}.length > 20", timeout=30_000)
        seen = page.evaluate(OUTPUT)
        stream_id = page.evaluate("JSON.parse(sessionStorage.getItem('rawsse.demo.stream')).id")
        assert want.startswith(seen)
        assert len(seen) < len(want), "the answer had ended before the reload"

        page.reload()
        page.wait_for_selector("body[data-ready=true]")
        # The page came back mid-answer and follows the same stream.
        assert page.inner_text("[data-testid=question]") == "hello"
        page.wait_for_function(ENDED, timeout=30_000)
        got = shown(page)
        assert got["status"] == "complete", got
        assert got["output"] == want
        assert page.evaluate("sessionStorage.length") == 0  # the finished stream is forgotten
        assert errors == []
        screenshot(page, f"relay-reload-{store_kind}.png")
    finally:
        page.close()
    # Followed again, not generated again: upstream was asked once, and the stream stays
    # replayable with the whole answer.
    assert completions(upstream_log) - before == 1
    replay = parse_events(httpx.get(f"{relay_url}/chat/{stream_id}", timeout=30).content)
    assert "".join(data["text"] for name, data in replay if name == "text") == want
    assert [name for name, _ in replay].count("done") == 1
