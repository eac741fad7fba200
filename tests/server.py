"""A scripted HTTP/1.1 server on real TCP (127.0.0.1, ephemeral port) for client tests.

It runs on the fixture server's harness (an asyncio loop in a background
thread).  Each request takes the next ``Script`` from the queue
(``server.expect(...)``) and plays its steps: bytes sent as one HTTP chunk each
(so the client sees those exact boundaries), sleeps, a reset (RST, via
``SO_LINGER`` 0) or a hang until the client leaves.  Every exchange is recorded
with the request and the moment (``time.monotonic``) the client disconnected,
so tests can assert how fast a client lets go.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rawsse._server import LoopThread

__all__ = [
    "Exchange",
    "Hang",
    "Reset",
    "Script",
    "Send",
    "ServerThread",
    "Sleep",
    "error_script",
    "sse_script",
]

SSE_HEADERS = (("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"))


@dataclass(frozen=True)
class Send:
    """Send these bytes as one HTTP chunk."""

    data: bytes


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Reset:
    """Abort the connection with a TCP RST."""


@dataclass(frozen=True)
class Hang:
    """Send nothing more; wait (at most ``seconds``) until the client disconnects."""

    seconds: float = 10.0


Step = Send | Sleep | Reset | Hang


@dataclass
class Script:
    """One scripted response."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = SSE_HEADERS
    steps: list[Step] = field(default_factory=list)
    head_delay: float = 0.0
    """Seconds to wait before sending the status line."""


@dataclass
class Exchange:
    """What the server saw of one request."""

    method: str = ""
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    received_at: float = 0.0
    disconnected_at: float | None = None
    """When the server saw the client close or reset the connection (monotonic)."""
    completed: bool = False
    """The server sent the whole scripted response."""

    def json(self) -> Any:
        return json.loads(self.body)


def sse_script(
    body: bytes,
    *,
    splits: list[int] | None = None,
    delay: float = 0.0,
    headers: tuple[tuple[str, str], ...] = SSE_HEADERS,
    then: list[Step] | None = None,
) -> Script:
    """``body`` as a stream, cut at the byte offsets ``splits`` (default: whole),
    with ``delay`` seconds before each piece, and extra ``then`` steps after."""
    cuts = [0, *(splits or []), len(body)]
    steps: list[Step] = []
    for start, end in itertools.pairwise(cuts):
        if delay:
            steps.append(Sleep(delay))
        if end > start:
            steps.append(Send(body[start:end]))
    steps.extend(then or [])
    return Script(headers=headers, steps=steps)


def error_script(
    status: int, body: bytes | str, *, headers: dict[str, str] | None = None
) -> Script:
    data = body.encode() if isinstance(body, str) else body
    hdrs = (("Content-Type", "application/json"), *(headers or {}).items())
    return Script(status=status, headers=hdrs, steps=[Send(data)])


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 402: "Payment Required",
            403: "Forbidden", 404: "Not Found", 408: "Request Timeout", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}  # fmt: skip


class ServerThread:
    """The server; ``url`` is the OpenAI-style base URL (``.../api/v1``)."""

    def __init__(self) -> None:
        self._harness = LoopThread(self._handle, name="rawsse-test-server", backlog=4096)
        self._scripts: deque[Script] = deque()
        self._lock = threading.Lock()
        self.exchanges: list[Exchange] = []
        self.default = Script(status=500, headers=(("Content-Type", "text/plain"),),
                              steps=[Send(b"no script")])  # fmt: skip

    # -- control (test thread) ----------------------------------------------

    def start(self) -> ServerThread:
        self._harness.start()
        return self

    def stop(self) -> None:
        self._harness.close()

    @property
    def port(self) -> int:
        return self._harness.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def expect(self, *scripts: Script) -> None:
        """Serve these scripts to the next requests, in order (forgetting old ones)."""
        with self._lock:
            self._scripts = deque(scripts)
            self.exchanges = []

    def wait_disconnect(self, index: int = -1, timeout: float = 2.0) -> float:
        """The disconnect time of exchange ``index``, waiting for it to happen."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                if self.exchanges and self.exchanges[index].disconnected_at is not None:
                    value = self.exchanges[index].disconnected_at
                    assert value is not None
                    return value
            time.sleep(0.001)
        raise AssertionError("the server saw no disconnect")

    # -- server (its own thread) ----------------------------------------------

    def _next_script(self) -> Script:
        with self._lock:
            return self._scripts.popleft() if self._scripts else self.default

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except (ConnectionError, OSError, EOFError):  # the client left mid-request
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        exchange = Exchange(method, path, headers, body, received_at=time.monotonic())
        with self._lock:
            self.exchanges.append(exchange)
        script = self._next_script()
        gone = asyncio.Event()

        async def watch() -> None:
            # The client sends nothing more after its request: EOF or a reset here
            # is the moment it let go of the connection.
            try:
                while await reader.read(65536):
                    pass
            except (ConnectionError, OSError):
                pass
            exchange.disconnected_at = time.monotonic()
            gone.set()

        watcher = asyncio.ensure_future(watch())
        transport = writer.transport
        transport.set_write_buffer_limits(0)  # drain() returns once the kernel has the bytes
        try:
            if script.head_delay:
                await asyncio.sleep(script.head_delay)
            status_line = f"HTTP/1.1 {script.status} {_REASONS.get(script.status, 'Status')}\r\n"
            head_out = status_line + "".join(f"{k}: {v}\r\n" for k, v in script.headers)
            head_out += "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            writer.write(head_out.encode("latin-1"))
            await writer.drain()
            for step in script.steps:
                if gone.is_set():
                    return
                if isinstance(step, Send):
                    writer.write(b"%x\r\n%s\r\n" % (len(step.data), step.data))
                    await writer.drain()
                elif isinstance(step, Sleep):
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(gone.wait(), step.seconds)
                elif isinstance(step, Reset):
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    transport.abort()
                    return
                else:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(gone.wait(), step.seconds)
                    return
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            exchange.completed = True
            # Wait for the client to close its side (it has the whole body).
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(gone.wait(), 5)
        finally:
            if not watcher.done():
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher


@contextlib.contextmanager
def running_server() -> Iterator[ServerThread]:
    server = ServerThread().start()
    try:
        yield server
    finally:
        server.stop()


# -- driving the clients the same way on sync, asyncio and trio ----------------

KEY = "sk-or-v1-TESTKEY0123456789abcdefSECRET"
MESSAGES = [{"role": "user", "content": "hi"}]


@dataclass
class Outcome:
    """Everything one stream produced, whichever client ran it."""

    events: list[Any]
    error: BaseException | None
    result: Any
    metrics: Any
    status_code: int | None
    headers: dict[str, str]
    started: float
    ended: float
    """``time.monotonic()`` when the client returned control (after the ``with``)."""
    stopped: float | None = None
    """When the driver broke out of the loop (``stop_after``)."""
    text: list[str] = field(default_factory=list)


def drive(
    mode: str,
    url: str,
    *,
    client: dict[str, Any] | None = None,
    stream: dict[str, Any] | None = None,
    stop_after: int | None = None,
    how: str = "iterate",
) -> Outcome:
    """Run one stream on the sync client (``mode="sync"``) or the async client on
    ``"asyncio"`` / ``"trio"``; catch rawsse errors into the outcome.

    ``how``: ``iterate`` (events), ``text`` (``text_stream``), ``final``
    (``final()`` without iterating), ``complete`` / ``plain`` (``complete()``
    streaming / with ``stream=False``).  ``stop_after`` breaks after that many events.
    """
    import anyio

    if mode == "sync":
        return _drive_sync(url, client or {}, stream or {}, stop_after, how)
    return anyio.run(_drive_async, url, client or {}, stream or {}, stop_after, how, backend=mode)


@dataclass
class _Run:
    """What a driver collects while it streams; ``outcome()`` once it is done."""

    events: list[Any] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    error: BaseException | None = None
    stream: Any = None
    """The stream, None for ``complete()``."""
    result: Any = None
    started: float = field(default_factory=time.monotonic)
    stopped: float | None = None

    def add(self, event: Any, stop_after: int | None) -> bool:
        """Keep ``event``; True (and the time noted) when that makes ``stop_after``."""
        self.events.append(event)
        if stop_after is not None and len(self.events) >= stop_after:
            self.stopped = time.monotonic()
            return True
        return False

    def outcome(self, ended: float) -> Outcome:
        s = self.stream
        response = s.response if s is not None else None
        return Outcome(
            events=self.events,
            error=self.error,
            result=s.result if s is not None else self.result,
            metrics=s.metrics if s is not None else None,
            status_code=response.status_code if response else None,
            headers=dict(response.headers) if response else {},
            started=self.started,
            ended=ended,
            stopped=self.stopped,
            text=self.text,
        )


def _drive_sync(
    url: str, ckw: dict[str, Any], skw: dict[str, Any], stop_after: int | None, how: str
) -> Outcome:
    from rawsse import Client, RawSSEError

    ckw = {"api_key": KEY, "base_url": url, **ckw}
    skw = {"model": "test/model", "messages": MESSAGES, **skw}
    run = _Run()
    with Client(**ckw) as c:
        try:
            if how in ("complete", "plain"):
                run.result = c.complete(stream=how == "complete", **skw)
            else:
                run.stream = s = c.stream(**skw)
                with s:
                    if how == "final":
                        run.result = s.final()
                    elif how == "text":
                        run.text.extend(s.text_stream)
                    else:
                        for event in s:
                            if run.add(event, stop_after):
                                break
        except RawSSEError as exc:
            run.error = exc
        ended = time.monotonic()
    return run.outcome(ended)


async def _drive_async(
    url: str, ckw: dict[str, Any], skw: dict[str, Any], stop_after: int | None, how: str
) -> Outcome:
    from rawsse import AsyncClient, RawSSEError

    ckw = {"api_key": KEY, "base_url": url, **ckw}
    skw = {"model": "test/model", "messages": MESSAGES, **skw}
    run = _Run()
    async with AsyncClient(**ckw) as c:
        try:
            if how in ("complete", "plain"):
                run.result = await c.complete(stream=how == "complete", **skw)
            else:
                run.stream = s = c.stream(**skw)
                async with s:
                    if how == "final":
                        run.result = await s.final()
                    elif how == "text":
                        run.text.extend([t async for t in s.text_stream])
                    else:
                        async for event in s:
                            if run.add(event, stop_after):
                                break
        except RawSSEError as exc:
            run.error = exc
        ended = time.monotonic()
    return run.outcome(ended)


def chunk(
    *,
    content: str | None = None,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    id: str = "gen-test-1",
) -> bytes:
    """One OpenRouter-shaped ``data:`` event (2026 key order)."""
    delta: dict[str, Any] = {"role": "assistant"}
    if content is not None:
        delta["content"] = content
    obj: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": 1795000000,
        "model": "test/model-2026",
        "provider": "TestProvider",
    }
    if error is not None:
        obj["error"] = error
    obj["choices"] = [
        {"index": 0, "delta": delta, "finish_reason": finish, "native_finish_reason": finish}
    ]
    if usage is not None:
        obj["usage"] = usage
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


KEEPALIVE = b": OPENROUTER PROCESSING\n\n"
DONE = b"data: [DONE]\n\n"
USAGE = {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14, "cost": 0.00012}
