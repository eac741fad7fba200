"""The demo page in real headless Chromium, through RelayApp (uvicorn) over the fixture server
with recorded timing: streaming as recorded, multibyte text split across reads, a mid-stream
error, and 30 s of upstream silence behind a proxy that cuts idle connections.

Chromium is Debian's package (``/usr/bin/chromium``), driven by Playwright's Python package;
no browser is ever downloaded.  Screenshots go to ``tests/artifacts/`` (not in git).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rawsse import AsyncClient, accumulate, parse_chat_stream
from rawsse.relay import RelayApp

from .relay_helpers import FixtureServer, serve_asgi

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
RECORDINGS = ROOT / "src" / "rawsse" / "recordings"
ENDED = (
    "['complete', 'error', 'truncated', 'cancelled', 'timed_out']"
    ".includes(document.getElementById('status').dataset.status)"
)
SILENCE = 30.0  # seconds of upstream keep-alives only
CUT = 5.0  # the proxy cuts a connection after this many seconds without downstream bytes

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not CHROMIUM.exists():
    pytest.skip("/usr/bin/chromium is absent (Debian package `chromium`)", allow_module_level=True)


def silent_cassette(path: Path) -> str:
    """An answer with SILENCE seconds of keep-alive comments only in the middle."""
    from rawsse.testing import Cassette, save_cassette

    from .server import DONE, KEEPALIVE, USAGE, chunk

    chunks = [(0.1, chunk(content="Before the pause, "))]
    t = 0.2
    while t < SILENCE:
        chunks.append((round(t, 3), KEEPALIVE))
        t += 10.0
    chunks.append((SILENCE + 0.2, chunk(content="and after it.")))
    chunks.append((SILENCE + 0.3, chunk(finish="stop", usage=USAGE) + DONE))
    save_cassette(
        Cassette(
            request={
                "method": "POST",
                "url": "https://x/api/v1",
                "headers": {},
                "body": {"model": "rawsse/silent"},
            },
            status=200,
            headers={"content-type": "text/event-stream"},
            chunks=chunks,
            end_t=SILENCE + 0.4,
            recorded_at="2026-11-30T00:00:00Z",
        ),
        path,
    )
    return "Before the pause, and after it."


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FixtureServer]:
    folder = tmp_path_factory.mktemp("browser-cassettes")
    for name in ("demo.jsonl", "error-midstream.jsonl"):
        shutil.copy(RECORDINGS / name, folder / name)
    shutil.copy(ROOT / "fixtures" / "cassettes" / "multibyte_split.jsonl", folder)
    silent_cassette(folder / "silent.jsonl")
    with FixtureServer(folder) as server:  # recorded timing
        yield server


@pytest.fixture(scope="module")
def relay_url(upstream: FixtureServer) -> Iterator[str]:
    clients: list[AsyncClient] = []

    def make() -> RelayApp:
        client = AsyncClient(base_url=upstream.base_url, api_key="", retries=0)
        clients.append(client)
        return RelayApp(client, models=upstream.models, demo=True, heartbeat=1.0)

    async def stop() -> None:
        for client in clients:
            await client.aclose()

    with serve_asgi(make, on_stop=stop) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@contextlib.contextmanager
def idle_cutting_proxy(target_port: int, cut: float) -> Iterator[str]:
    """A TCP proxy that drops a connection after ``cut`` s without downstream bytes, as
    load balancers do; yields its base URL."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []

    async def pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: list[float] | None
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if seen is not None:
                    seen[0] = time.monotonic()
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_w: asyncio.StreamWriter | None = None
        tasks: list[asyncio.Future[None]] = []
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", target_port)
            seen = [time.monotonic()]
            tasks.append(asyncio.ensure_future(pipe(client_r, server_w, None)))
            down = asyncio.ensure_future(pipe(server_r, client_w, seen))
            tasks.append(down)
            while not down.done():
                await asyncio.sleep(0.1)
                if time.monotonic() - seen[0] > cut:
                    client_w.transport.abort()
                    server_w.transport.abort()
                    break
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for writer in (client_w, server_w):
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(Exception):
                        await writer.wait_closed()

    stop = asyncio.Event()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        async with server:
            await stop.wait()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(5)
    try:
        yield f"http://127.0.0.1:{port[0]}/"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)
        loop.close()


def recorded_text(upstream: FixtureServer, name: str) -> str:
    fixture = next(f for f in upstream.fixtures if f.name == name)
    return accumulate(parse_chat_stream(fixture.cassette.body)).text


def model_of(upstream: FixtureServer, name: str) -> str:
    return next(f.id for f in upstream.fixtures if f.name == name)


def run_page(browser: Any, url: str, model: str, *, timeout: float = 30.0) -> tuple[Any, float]:
    """Open the demo page, ask with ``model``; returns the page and when text first showed."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    page.select_option("[data-testid=model]", model)
    page.fill("[data-testid=prompt]", "hello")
    started = time.monotonic()
    page.click("[data-testid=send]")
    page.wait_for_function(
        "document.getElementById('output').textContent.length > 0", timeout=timeout * 1000
    )
    first = time.monotonic() - started
    page.wait_for_function(ENDED, timeout=timeout * 1000)
    assert errors == []
    return page, first


def shown(page: Any) -> dict[str, str]:
    names = ("status", "output", "error")
    return {name: page.inner_text(f"[data-testid={name}]") for name in names}


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_the_page_streams_the_recording_as_recorded(
    browser: Any, relay_url: str, upstream: FixtureServer
) -> None:
    started = time.monotonic()
    page, first = run_page(browser, relay_url, model_of(upstream, "demo"))
    total = time.monotonic() - started
    try:
        got = shown(page)
        assert got["status"] == "complete", got
        assert got["output"] == recorded_text(upstream, "demo")
        assert first < total - 1.0  # the first text showed well before the stream ended
        screenshot(page, "relay-demo.png")
    finally:
        page.close()


def test_multibyte_text_split_across_reads_renders_exactly(
    browser: Any, relay_url: str, upstream: FixtureServer
) -> None:
    page, _ = run_page(browser, relay_url, model_of(upstream, "multibyte_split"))
    try:
        got = shown(page)
        want = recorded_text(upstream, "multibyte_split")
        assert any(ord(c) > 0xFFFF for c in want) or any(ord(c) > 0x7F for c in want)
        assert got["output"] == want
    finally:
        page.close()


def test_an_upstream_error_mid_stream_shows_with_the_partial_text(
    browser: Any, relay_url: str, upstream: FixtureServer
) -> None:
    page, _ = run_page(browser, relay_url, model_of(upstream, "error-midstream"))
    try:
        got = shown(page)
        assert got["status"] == "error", got
        assert got["error"] != ""
        assert got["output"] == recorded_text(upstream, "error-midstream")
        assert got["output"] != ""
        screenshot(page, "relay-error.png")
    finally:
        page.close()


def test_heartbeats_keep_the_page_connected_through_30_s_of_upstream_silence(
    browser: Any, relay_url: str, upstream: FixtureServer
) -> None:
    port = int(relay_url.rstrip("/").rsplit(":", 1)[1])
    with idle_cutting_proxy(port, CUT) as proxied:
        page, _ = run_page(browser, proxied, "rawsse/silent", timeout=SILENCE + 30)
        try:
            got = shown(page)
            assert got["status"] == "complete", got
            assert got["output"] == "Before the pause, and after it."
        finally:
            page.close()


def test_the_proxy_does_cut_a_silent_connection(upstream: FixtureServer) -> None:
    # The control for the test above: without heartbeats the proxy drops the stream.
    import httpx

    clients: list[AsyncClient] = []

    def make() -> RelayApp:
        client = AsyncClient(base_url=upstream.base_url, api_key="", retries=0)
        clients.append(client)
        return RelayApp(client, models=upstream.models, heartbeat=None)

    async def stop() -> None:
        await clients[0].aclose()

    with serve_asgi(make, on_stop=stop) as url:
        port = int(url.rsplit(":", 1)[1])
        with idle_cutting_proxy(port, 1.0) as proxied:
            body = {"model": "rawsse/silent", "messages": [{"role": "user", "content": "x"}]}
            with (
                pytest.raises(httpx.HTTPError),
                httpx.stream("POST", proxied + "chat", json=body, timeout=20) as r,
            ):
                for _ in r.iter_raw():
                    pass
