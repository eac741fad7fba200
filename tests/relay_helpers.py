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

try:
    from rawsse.testing import FixtureServer  # type: ignore[attr-defined]
except ImportError:  # the fixture server lives at the package root
    from rawsse import FixtureServer

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
