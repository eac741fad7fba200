"""Running an ASGI app under real uvicorn on a free loopback port, for the relay tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from rawsse import ServerSentEvent, SSEDecoder
from tests.helpers import stop_process

try:
    from rawsse.testing import FixtureServer  # type: ignore[attr-defined]
except ImportError:  # the fixture server lives at the package root
    from rawsse.testing import FixtureServer

__all__ = ["FixtureServer", "parse_events", "serve_asgi"]


@contextlib.contextmanager
def serve_asgi(
    make_app: Callable[[], Any], *, on_stop: Callable[[], Any] | None = None
) -> Iterator[str]:
    """Serve ``make_app()`` with uvicorn in a thread of its own; yields the base URL.

    ``make_app`` runs in the server's thread (so clients it builds belong to that
    loop); ``on_stop``, an async function, runs there after the server stopped.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    port = sock.getsockname()[1]
    holder: dict[str, Any] = {}
    failed: list[BaseException] = []

    async def main() -> None:
        config = uvicorn.Config(
            make_app(), log_level="error", lifespan="off", backlog=4096, timeout_keep_alive=5
        )
        server = holder["server"] = uvicorn.Server(config)
        try:
            await server.serve(sockets=[sock])
        finally:
            if on_stop is not None:
                await on_stop()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run, name="relay-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not (holder.get("server") and holder["server"].started):
        if failed or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start: {failed}")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        holder["server"].should_exit = True
        thread.join(15)
        sock.close()


def parse_events(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """The relay's data events in ``data``, as (name, JSON object) pairs."""
    found = [e for e in SSEDecoder().feed(data) if isinstance(e, ServerSentEvent)]
    return [(e.event, json.loads(e.data)) for e in found]


_RELAY_PROCESS = """
import asyncio, json, socket, sys
import httpx, uvicorn
from rawsse import AsyncClient
from rawsse.relay import RelayApp

options = json.loads(sys.argv[1])
upstream = options.pop("upstream")
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
sock.listen(8192)
print(f"http://127.0.0.1:{sock.getsockname()[1]}/", flush=True)

async def main():
    # httpcore's pool scans every connection for each idle one on every request and
    # response end: few kept-alive connections keep that scan short at 1,000 streams.
    limits = httpx.Limits(max_connections=4096, max_keepalive_connections=16)
    http = httpx.AsyncClient(limits=limits, timeout=None)
    client = AsyncClient(base_url=upstream, api_key="", retries=0, http_client=http)
    async with http:
        app = RelayApp(client, **options)
        config = uvicorn.Config(app, log_level="error", lifespan="off", backlog=8192)
        await uvicorn.Server(config).serve(sockets=[sock])

asyncio.run(main())
"""


@contextlib.contextmanager
def relay_process(upstream: str, **options: Any) -> Iterator[tuple[str, int]]:
    """``RelayApp`` under uvicorn in a process of its own; yields (base URL, pid)."""
    import subprocess
    import sys

    options = {"upstream": upstream, **options}
    proc = subprocess.Popen(
        [sys.executable, "-c", _RELAY_PROCESS, json.dumps(options)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("http://"):
            raise RuntimeError(f"the relay process did not start: {line!r}")
        yield line.rstrip("/"), proc.pid
    finally:
        stop_process(proc)


def rss_bytes(pid: int) -> int:
    """The resident memory of process ``pid`` (Linux ``/proc``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def save_answer(
    path: Any,
    parts: list[list[str]],
    *,
    model: str = "test/model",
    gap: float = 0.01,
    pause: float = 0.0,
) -> str:
    """Write a cassette answering ``model`` with ``parts`` (lists of text tokens, each
    token one chunk ``gap`` s apart, ``pause`` s of silence between parts); returns
    the joined text."""
    from rawsse.testing import Cassette, save_cassette

    from .server import DONE, USAGE, chunk

    chunks: list[tuple[float, bytes]] = []
    t = 0.0
    for number, tokens in enumerate(parts):
        if number:
            t += pause
        for token in tokens:
            chunks.append((round(t, 6), chunk(content=token)))
            t += gap
    chunks.append((round(t, 6), chunk(finish="stop", usage=USAGE) + DONE))
    cassette = Cassette(
        request={
            "method": "POST",
            "url": "https://openrouter.ai/api/v1/chat/completions",
            "headers": {},
            "body": {"model": model},
        },
        status=200,
        headers={"content-type": "text/event-stream"},
        chunks=chunks,
        end_t=round(t + 0.001, 6),
        recorded_at="2026-11-30T00:00:00Z",
    )
    save_cassette(cassette, path)
    return "".join(token for tokens in parts for token in tokens)


@contextlib.contextmanager
def fixture_process(directory: Any) -> Iterator[str]:
    """``rawsse serve DIRECTORY`` in a process of its own; yields its base URL."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "rawsse", "serve", str(directory), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if not line or not line[0].startswith("http://"):
            raise RuntimeError(f"the fixture server did not start: {line!r}")
        yield line[0]
    finally:
        stop_process(proc)


@contextlib.contextmanager
def serve_trio(
    upstream: str,
    models: list[str],
    *,
    headers: dict[str, str] | None = None,
    wrap: Callable[[Any], Any] | None = None,
    **options: Any,
) -> Iterator[str]:
    """``RelayApp`` under hypercorn's trio worker, in a thread; yields the base URL.
    ``wrap(app)`` is served instead of the app when given."""
    import pytest

    hypercorn_trio = pytest.importorskip("hypercorn.trio", reason="hypercorn is not installed")
    trio = pytest.importorskip("trio")
    from hypercorn.config import Config

    from rawsse import AsyncClient
    from rawsse.relay import RelayApp

    ready = threading.Event()
    stop = threading.Event()
    bound: list[str] = []

    async def main() -> None:
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.loglevel = "WARNING"
        config.accesslog = None
        client = AsyncClient(base_url=upstream, api_key="", retries=0, headers=headers)
        async with client:
            app = RelayApp(client, models=models, **options)
            if wrap is not None:
                app = wrap(app)

            async def shutdown() -> None:
                while not stop.is_set():
                    await trio.sleep(0.05)

            async with trio.open_nursery() as nursery:
                urls = await nursery.start(
                    lambda task_status: hypercorn_trio.serve(
                        app, config, shutdown_trigger=shutdown, task_status=task_status
                    )
                )
                bound.extend(urls)
                ready.set()

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    assert ready.wait(10), "hypercorn did not start"
    try:
        yield bound[0].rstrip("/")
    finally:
        stop.set()
        thread.join(15)
