"""A hostile HTTP/1.1 server on real TCP (127.0.0.1) for the client's promises.

Each route answers every request with one ``Plan``: a status, headers and a
body that may be endless (a flood), slow (a trickle), stalled, gzip'd or a gzip
bomb.  Routes are picked by the first path segment, so one server serves many
plans: ``server.url("flood")`` is a base URL whose ``/chat/completions`` gets the
plan registered as ``"flood"``.  The loop runs in a background thread; writes
wait for the client (``drain``), so a flood goes exactly as fast as it reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "HostileServer",
    "Plan",
    "bomb",
    "content_chunk",
    "endless",
    "gzip_bytes",
]

SSE = (("Content-Type", "text/event-stream"),)
GZIP_SSE = (("Content-Type", "text/event-stream"), ("Content-Encoding", "gzip"))


@dataclass
class Plan:
    """One answer: ``body()`` gives the pieces, written one HTTP chunk each, with
    ``delay`` seconds before each; ``stall`` seconds of silence after them (then EOF)."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = SSE
    body: Callable[[], Iterable[bytes]] = field(default=lambda: ())
    delay: float = 0.0
    stall: float = 0.0
    requests: list[dict[str, str]] = field(default_factory=list)
    """The headers of every request this plan answered."""


def content_chunk(text: str = "x", **extra: Any) -> bytes:
    """One chat chunk with ``text`` as choice 0's content."""
    obj: dict[str, Any] = {
        "id": "gen-hostile",
        "model": "test/model",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
        **extra,
    }
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def endless(piece: bytes, times: int = 1) -> Callable[[], Iterator[bytes]]:
    """A body repeating ``piece * times`` forever."""
    block = piece * times
    return lambda: itertools.repeat(block)


def gzip_bytes(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def bomb(unit: bytes = b"\n", mib: int | None = None) -> Callable[[], Iterator[bytes]]:
    """A gzip body of ``unit`` repeated, 1 MiB per ~1 KiB sent: ``mib`` MiB, or endless.

    Each MiB is compressed after a full flush, so its bytes are the same every time
    and the body costs nothing to make however long it is.
    """
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    plain = unit * ((1 << 20) // len(unit))
    first = c.compress(plain) + c.flush(zlib.Z_FULL_FLUSH)  # the gzip header, MiB 1
    block = c.compress(plain) + c.flush(zlib.Z_FULL_FLUSH)  # every later MiB

    def body() -> Iterator[bytes]:
        yield first
        for _ in itertools.count() if mib is None else range(mib - 1):
            yield block

    return body


class HostileServer:
    """The server; ``url(route)`` is an OpenAI-style base URL for that plan."""

    def __init__(self) -> None:
        self.plans: dict[str, Plan] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    def __enter__(self) -> HostileServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def url(self, route: str, plan: Plan | None = None) -> str:
        if plan is not None:
            self.plans[route] = plan
        return f"http://127.0.0.1:{self.port}/{route}/api/v1"

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in asyncio.all_tasks(self._loop):
            if task is not asyncio.current_task():
                task.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await self._serve(reader, writer)
        with contextlib.suppress(Exception):
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        _, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        await reader.readexactly(int(headers.get("content-length", "0")))
        plan = self.plans[path.split("/")[1]]
        plan.requests.append(headers)
        out = f"HTTP/1.1 {plan.status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in plan.headers)
        writer.write((out + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode())
        await writer.drain()
        for piece in plan.body():
            if not piece:
                continue  # an empty chunk would end the body
            if plan.delay:
                await asyncio.sleep(plan.delay)
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        if plan.stall:
            await asyncio.sleep(plan.stall)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()  # until the client closes
