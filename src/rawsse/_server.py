"""A local fixture server: cassettes served as an OpenAI-compatible API over real HTTP.

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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import http
import importlib.resources
import json
import math
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ._accumulate import ChatResult, accumulate
from ._cassette import END_EOF, Cassette, loads_cassette, redact_url
from ._chat import parse_chat_stream
from ._errors import CassetteError, MalformedChunk

__all__ = ["API_PREFIX", "CHAT_PATH", "FixtureServer", "load_fixtures", "parse_speed"]

API_PREFIX = "/api/v1"
CHAT_PATH = API_PREFIX + "/chat/completions"
MODELS_PATH = API_PREFIX + "/models"
CASSETTE_HEADER = "x-rawsse-cassette"

_MAX_HEAD = 64 * 1024
_MAX_BODY = 16 * 1024 * 1024
# Headers of the recorded response that describe the original connection or
# encoding, not the body we send: the replay sets its own framing.
_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "date",
        "server",
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-expose-headers",
    }
)
_CORS = (("access-control-allow-origin", "*"), ("access-control-expose-headers", "*"))
_ALLOW_HEADERS = (
    "authorization, content-type, x-rawsse-cassette, x-rawsse-cut-after, x-rawsse-stall, "
    "x-rawsse-speed"
)


@dataclass(frozen=True)
class _Fixture:
    id: str
    name: str
    cassette: Cassette
    created: int


class _BadRequest(Exception):
    """A request we answer with an OpenRouter-shaped JSON error."""

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


class _ClientGone(Exception):
    """The client closed the connection."""


def _created(recorded_at: str) -> int:
    try:
        when = datetime.datetime.fromisoformat(recorded_at.replace("Z", "+00:00"))
    except ValueError:
        return 0
    return int(when.timestamp())


def _read_sources(source: str | os.PathLike[str] | None) -> list[tuple[str, bytes]]:
    if source is None:
        folder = importlib.resources.files("rawsse").joinpath("recordings")
        entries = [e for e in folder.iterdir() if e.name.endswith(".jsonl")]
        return [(e.name, e.read_bytes()) for e in sorted(entries, key=lambda e: e.name)]
    path = Path(source)
    if path.is_file():
        return [(path.name, path.read_bytes())]
    if not path.is_dir():
        raise CassetteError(f"{path}: no such file or directory")
    return [(p.name, p.read_bytes()) for p in sorted(path.glob("*.jsonl"))]


def load_fixtures(source: str | os.PathLike[str] | None = None) -> list[_Fixture]:
    """The cassettes in ``source`` (a directory of ``*.jsonl``, or one file; None: the
    shipped recordings), each with its model id: the request's ``model``, or the file
    name when there is none or another cassette already claimed it.

    Raises ``CassetteError`` for a damaged file or when there is no cassette at all.
    """
    fixtures: list[_Fixture] = []
    taken: set[str] = set()
    for filename, data in _read_sources(source):
        cassette = loads_cassette(data, source=filename)
        name = filename.removesuffix(".jsonl")
        model = cassette.model
        ident = model if model and model not in taken else name
        taken.add(ident)
        fixtures.append(_Fixture(ident, name, cassette, _created(cassette.recorded_at)))
    if not fixtures:
        raise CassetteError(f"{source}: no cassettes (*.jsonl) to serve")
    return fixtures


def _error_body(status: int, message: str) -> bytes:
    return json.dumps({"error": {"code": status, "message": message}}).encode("utf-8")


def _completion(result: ChatResult) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` document a stream adds up to."""
    choices = []
    for choice in result.choices:
        message: dict[str, Any] = {"role": choice.role or "assistant", "content": choice.content}
        if choice.reasoning:
            message["reasoning"] = choice.reasoning
        if choice.reasoning_details:
            message["reasoning_details"] = choice.reasoning_details
        if choice.refusal is not None:
            message["refusal"] = choice.refusal
        if choice.tool_calls:
            if not choice.content:
                message["content"] = None
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": call.type or "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in choice.tool_calls
            ]
        entry: dict[str, Any] = {
            "index": choice.index,
            "message": message,
            "finish_reason": choice.finish_reason,
            "native_finish_reason": choice.native_finish_reason,
        }
        error = result.error
        if error is not None and error.index in (None, choice.index):
            entry["finish_reason"] = "error"
            entry["error"] = {"code": error.code, "message": error.message}
            if error.metadata is not None:
                entry["error"]["metadata"] = error.metadata
        choices.append(entry)
    doc: dict[str, Any] = {
        "id": result.id,
        "object": "chat.completion",
        "created": result.created,
        "model": result.model,
    }
    if result.provider is not None:
        doc["provider"] = result.provider
    doc["choices"] = choices
    if result.usage is not None:
        doc["usage"] = result.usage.raw
    return doc


def parse_speed(text: str) -> float:
    """``X`` as a speed: a positive number, ``0``/``instant`` (no waiting) or ``inf``."""
    if text.strip().lower() == "instant":
        return 0.0
    value = float(text)
    if math.isnan(value) or value < 0:
        raise ValueError(f"speed must be >= 0, not {text!r}")
    return value


def _faults(headers: dict[str, str]) -> tuple[int | None, tuple[int, float] | None, float | None]:
    cut: int | None = None
    stall: tuple[int, float] | None = None
    speed: float | None = None
    try:
        if "x-rawsse-cut-after" in headers:
            cut = int(headers["x-rawsse-cut-after"])
            if cut < 0:
                raise ValueError
        if "x-rawsse-stall" in headers:
            at, _, seconds = headers["x-rawsse-stall"].partition(",")
            stall = (int(at), float(seconds))
            if stall[0] < 0 or not 0 <= stall[1] < math.inf:
                raise ValueError
        if "x-rawsse-speed" in headers:
            speed = parse_speed(headers["x-rawsse-speed"])
    except ValueError:
        raise _BadRequest(
            400,
            "bad fault header: X-Rawsse-Cut-After: N (bytes), X-Rawsse-Stall: N,S "
            "(byte, seconds), X-Rawsse-Speed: X (number or 'instant')",
        ) from None
    return cut, stall, speed


class _Exchange:
    """What one request did, for the log line."""

    __slots__ = ("bytes", "method", "model", "note", "path", "status")

    def __init__(self) -> None:
        self.method = "-"
        self.path = "-"
        self.model: str | None = None
        self.status = 0
        self.bytes = 0
        self.note = ""


class FixtureServer:
    """Serves cassettes over HTTP on ``host:port`` from a background thread.

    ``source`` is a directory of cassettes or one cassette file (None: the
    recordings shipped with rawsse); ``port=0`` picks a free port; ``speed``
    scales the recorded timing (2: twice as fast; 0: no waiting); ``log``, when
    given, gets one line per request (method, path, model, status, body bytes,
    duration; never a header, so never a key).  Use it as a context manager::

        with FixtureServer() as server:
            client = rawsse.Client(base_url=server.base_url, api_key="")
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        log: IO[str] | None = None,
    ) -> None:
        if math.isnan(speed) or speed < 0:
            raise ValueError(f"speed must be >= 0, not {speed!r}")
        self.fixtures = load_fixtures(source)
        self._by_name: dict[str, _Fixture] = {}
        for fixture in reversed(self.fixtures):  # the first one claiming a name wins
            self._by_name[fixture.name] = fixture
        for fixture in self.fixtures:
            self._by_name[fixture.id] = fixture
        self.host = host
        self.port = port
        self.speed = speed
        self._log = log
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------

    @property
    def models(self) -> list[str]:
        """The model ids served, in file name order."""
        return [f.id for f in self.fixtures]

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/api/v1`` (the port is the real one once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{API_PREFIX}"

    def start(self) -> FixtureServer:
        """Listen and serve in a background thread; returns once the socket listens.

        Raises ``OSError`` when the address cannot be bound.
        """
        if self._thread is not None:
            raise RuntimeError("the fixture server is already started")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:  # handed to start()'s caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        thread = threading.Thread(target=run, name="rawsse-fixture-server", daemon=True)
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            raise failure[0]
        self._loop = loop
        self._thread = thread
        return self

    def close(self) -> None:
        """Stop serving: open connections are dropped; waits for the thread to end."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        with contextlib.suppress(RuntimeError):  # the loop already stopped
            loop.call_soon_threadsafe(loop.stop)
        thread.join()

    def __enter__(self) -> FixtureServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._connection, self.host, self.port, limit=_MAX_HEAD
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        # Let accepts already under way create their tasks, then cancel every task
        # (connections mid-replay included) so none is left pending at loop close.
        await asyncio.sleep(0)
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # -- HTTP ------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while await self._one_request(reader, writer):
                pass
        except (_ClientGone, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; True when the connection may carry another."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                await self._send_json(writer, 400, _error_body(400, "incomplete request"), True)
            return False
        except asyncio.LimitOverrunError:
            body = _error_body(431, "request head too large")
            await self._send_json(writer, 431, body, True)
            return False
        started = time.monotonic()
        exchange = _Exchange()
        keep_alive = False
        try:
            method, target, version, headers = _parse_head(head)
            exchange.method, exchange.path = method, redact_url(target)
            keep_alive = _keep_alive(version, headers)
            body = await _read_body(reader, writer, headers)
            keep_alive = await self._route(writer, method, target, headers, body, exchange)
            keep_alive = keep_alive and _keep_alive(version, headers)
        except _BadRequest as exc:
            exchange.status = exc.status
            data = _error_body(exc.status, exc.message)
            exchange.bytes = len(data)
            keep_alive = keep_alive and not exc.close
            await self._send_json(writer, exc.status, data, not keep_alive)
        except (_ClientGone, ConnectionError):
            exchange.note = "client went away"
            keep_alive = False
        finally:
            self._log_line(writer, exchange, time.monotonic() - started)
        return keep_alive

    async def _route(
        self,
        writer: asyncio.StreamWriter,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        exchange: _Exchange,
    ) -> bool:
        path = target.split("?", 1)[0]
        if path != "/" and path.endswith("/"):
            path = path[:-1]
        if method == "OPTIONS":
            exchange.status = 204
            await self._preflight(writer, headers)
            return True
        if path == MODELS_PATH:
            if method not in ("GET", "HEAD"):
                raise _BadRequest(405, f"{method} {path}: only GET is allowed")
            data = json.dumps(self._models_document()).encode("utf-8")
            exchange.status, exchange.bytes = 200, len(data)
            await self._send_json(writer, 200, data, False, head=method == "HEAD")
            return True
        if path == CHAT_PATH:
            if method != "POST":
                raise _BadRequest(405, f"{method} {path}: only POST is allowed")
            return await self._chat(writer, headers, body, exchange)
        raise _BadRequest(
            404,
            f"{method} {path}: not found (this server has POST {CHAT_PATH} and GET {MODELS_PATH})",
        )

    def _models_document(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {
                    "id": f.id,
                    "object": "model",
                    "created": f.created,
                    "owned_by": "rawsse",
                    "name": f.name,
                }
                for f in self.fixtures
            ],
        }

    def _pick(
        self, headers: dict[str, str], body: bytes, exchange: _Exchange
    ) -> tuple[_Fixture, bool]:
        try:
            request = json.loads(body) if body else None
        except ValueError as exc:
            raise _BadRequest(400, f"the request body is not valid JSON: {exc}") from None
        if not isinstance(request, dict):
            raise _BadRequest(400, "the request body must be a JSON object")
        wanted = headers.get(CASSETTE_HEADER) or request.get("model")
        if not isinstance(wanted, str) or not wanted:
            raise _BadRequest(400, "the request body has no 'model'")
        exchange.model = wanted
        fixture = self._by_name.get(wanted)
        if fixture is None:
            raise _BadRequest(
                404,
                f"no cassette for model {wanted!r}; this server has: " + ", ".join(self.models),
            )
        stream = request.get("stream", False)
        return fixture, stream is True

    async def _chat(
        self,
        writer: asyncio.StreamWriter,
        headers: dict[str, str],
        body: bytes,
        exchange: _Exchange,
    ) -> bool:
        received = asyncio.get_running_loop().time()
        fixture, stream = self._pick(headers, body, exchange)
        cut, stall, speed = _faults(headers)
        cassette = fixture.cassette
        if not stream and cassette.status == 200:
            cassette = self._non_streaming(cassette)
        return await self._replay(
            writer, cassette, received, self.speed if speed is None else speed, cut, stall, exchange
        )

    @staticmethod
    def _non_streaming(cassette: Cassette) -> Cassette:
        """The completion a stream adds up to, sent whole when the stream would have ended."""
        content_type = cassette.headers.get("content-type", "")
        if not content_type.startswith("text/event-stream"):
            raise _BadRequest(400, 'this cassette is not a stream; send "stream": true')
        try:
            result = accumulate(parse_chat_stream(cassette.body))
        except MalformedChunk as exc:
            raise _BadRequest(
                400,
                f'this cassette cannot be answered with stream=false ({exc}); send "stream": true',
            ) from None
        data = json.dumps(_completion(result), ensure_ascii=False).encode("utf-8")
        done = cassette.end_t
        if done is None:
            done = cassette.chunks[-1][0] if cassette.chunks else cassette.response_t
        headers = {k: v for k, v in cassette.headers.items() if k.lower() != "content-type"}
        headers["content-type"] = "application/json"
        return dataclasses.replace(
            cassette, headers=headers, chunks=[(done, data)], response_t=done
        )

    async def _replay(
        self,
        writer: asyncio.StreamWriter,
        cassette: Cassette,
        received: float,
        speed: float,
        cut: int | None,
        stall: tuple[int, float] | None,
        exchange: _Exchange,
    ) -> bool:
        loop = asyncio.get_running_loop()
        scale = 0.0 if speed == 0 or math.isinf(speed) else 1.0 / speed
        shift = 0.0  # seconds added by a stall fault

        async def at(t: float) -> None:
            if scale:
                delay = received + shift + t * scale - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)

        await at(cassette.response_t)
        headers = [(k, v) for k, v in cassette.headers.items() if k.lower() not in _HOP_HEADERS]
        headers += [("transfer-encoding", "chunked"), ("server", "rawsse"), *_CORS]
        exchange.status = cassette.status
        writer.write(_head(cassette.status, headers))
        sent = 0
        for t, data in cassette.chunks:
            await at(t)
            pieces = [data]
            if stall is not None and sent <= stall[0] < sent + len(data):
                split = stall[0] - sent
                pieces = [data[:split], data[split:]]
            for number, piece in enumerate(pieces):
                if number == 1 and stall is not None:
                    await writer.drain()
                    await asyncio.sleep(stall[1])
                    shift += stall[1]
                    stall = None
                if cut is not None and sent + len(piece) >= cut:
                    piece = piece[: cut - sent]
                    await _write_chunk(writer, piece)
                    exchange.bytes = sent + len(piece)
                    exchange.note = f"cut after {cut} bytes"
                    return False
                await _write_chunk(writer, piece)
                sent += len(piece)
                exchange.bytes = sent
        if cassette.end != END_EOF:
            # The recording was cut: cut the replay too, at the same point.
            await at(cassette.end_t if cassette.end_t is not None else 0.0)
            exchange.note = f"recording ends {cassette.end!r}: connection dropped"
            return False
        if cut is not None:  # the body is shorter than N: cut at its end
            exchange.note = "cut at the end of the body"
            return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def _preflight(self, writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
        allow = headers.get("access-control-request-headers") or _ALLOW_HEADERS
        response = [
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "GET, POST, OPTIONS"),
            ("access-control-allow-headers", allow),
            ("access-control-max-age", "600"),
            ("content-length", "0"),
        ]
        if headers.get("access-control-request-private-network") == "true":
            response.append(("access-control-allow-private-network", "true"))
        writer.write(_head(204, response))
        await writer.drain()

    async def _send_json(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        data: bytes,
        close: bool,
        *,
        head: bool = False,
    ) -> None:
        headers = [
            ("content-type", "application/json"),
            ("content-length", str(len(data))),
            ("server", "rawsse"),
            *_CORS,
        ]
        if status == 405:
            headers.append(("allow", "GET, POST, OPTIONS"))
        if close:
            headers.append(("connection", "close"))
        writer.write(_head(status, headers) + (b"" if head else data))
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    def _log_line(self, writer: asyncio.StreamWriter, exchange: _Exchange, seconds: float) -> None:
        if self._log is None:
            return
        model = exchange.model if exchange.model is not None else "-"
        note = f" ({exchange.note})" if exchange.note else ""
        line = (
            f"{exchange.method} {exchange.path} model={model} {exchange.status or '-'} "
            f"{exchange.bytes} B {seconds:.3f} s{note}\n"
        )
        with contextlib.suppress(Exception):
            self._log.write(line)
            self._log.flush()


def _head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


async def _write_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    if data:
        writer.write(b"%x\r\n%b\r\n" % (len(data), data))
        await writer.drain()


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise _BadRequest(400, "bad request head", close=True) from None
    lines = text[:-4].split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1]:
        raise _BadRequest(400, f"bad request line: {lines[0][:100]!r}", close=True)
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest(400, f"bad header line: {line[:100]!r}", close=True)
        name = name.lower()
        value = value.strip(" \t")
        if name in headers:
            if name == "content-length" and headers[name] != value:
                raise _BadRequest(400, "conflicting Content-Length headers", close=True)
            headers[name] = f"{headers[name]}, {value}"
            if name == "content-length":
                headers[name] = value
        else:
            headers[name] = value
    return method, target, version, headers


def _keep_alive(version: str, headers: dict[str, str]) -> bool:
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


async def _read_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str]
) -> bytes:
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    length_text = headers.get("content-length")
    if not chunked and length_text is None:
        return b""
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    try:
        if chunked or length_text is None:
            return await _read_chunked(reader)
        if not length_text.isdigit():
            raise _BadRequest(400, f"bad Content-Length: {length_text!r}", close=True)
        length = int(length_text)
        if length > _MAX_BODY:
            raise _BadRequest(413, f"request body over {_MAX_BODY} bytes", close=True)
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise _ClientGone from None


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError:
            raise _BadRequest(400, "bad chunk size line", close=True) from None
        size_text = line[:-2].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _BadRequest(400, "bad chunk size line", close=True) from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers: ignored
                pass
            return bytes(body)
        if len(body) + size > _MAX_BODY:
            raise _BadRequest(413, f"request body over {_MAX_BODY} bytes", close=True)
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise _BadRequest(400, "bad chunk framing", close=True)
