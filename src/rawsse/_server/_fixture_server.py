"""``FixtureServer``: cassettes served as an OpenAI-compatible API over real HTTP.

One connection loop on the ``LoopThread`` harness: read a request (``_http``),
route it, answer from the emulation (``_emulation``) or replay a cassette with
its faults (``_faults``), and log one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import time
from typing import IO

from .._cassette import redact_url
from .._closing import ClosesOnExit
from ._emulation import (
    API_PREFIX,
    CHAT_PATH,
    MODELS_PATH,
    Fixture,
    find,
    load_fixtures,
    models_document,
    non_streaming,
    requested,
)
from ._faults import Faults, parse_faults, serve_replay
from ._harness import LoopThread
from ._http import (
    MAX_HEAD,
    BadRequest,
    ClientGone,
    error_body,
    keep_alive,
    parse_head,
    read_body,
    response_head,
    send_json,
)
from ._prefill import Seam, parse_resume_faults, prepare

__all__ = ["FixtureServer"]

_ALLOW_HEADERS = (
    "authorization, content-type, x-rawsse-cassette, x-rawsse-cut-after, x-rawsse-stall, "
    "x-rawsse-speed, x-rawsse-keepalive, x-rawsse-seam, x-rawsse-length-after, "
    "x-rawsse-error-at, x-rawsse-once"
)


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


class FixtureServer(ClosesOnExit):
    """Serves cassettes over HTTP on ``host:port`` from a background thread.

    ``source`` is a directory of cassettes or one cassette file (None: the
    recordings shipped with rawsse); ``port=0`` picks a free port; ``speed``
    scales the recorded timing (2: twice as fast; 0: no waiting); ``log``, when
    given, gets one line per request (method, path, model, status, body bytes,
    duration; never a header, so never a key); ``seam`` is the quirk of
    continuations from a prefill (``Seam`` or ``"none"``, ``"trim"``,
    ``"repeat:N"``).  Use it as a context manager::

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
        seam: Seam | str = "none",
    ) -> None:
        if math.isnan(speed) or speed < 0:
            raise ValueError(f"speed must be >= 0, not {speed!r}")
        self.fixtures = load_fixtures(source)
        self._by_name: dict[str, Fixture] = {}
        for fixture in reversed(self.fixtures):  # the first one claiming a name wins
            self._by_name[fixture.name] = fixture
        for fixture in self.fixtures:
            self._by_name[fixture.id] = fixture
        self.host = host
        self.port = port
        self.speed = speed
        self.seam = seam if isinstance(seam, Seam) else Seam.parse(seam)
        self._log = log
        self._spent: set[str] = set()  # X-Rawsse-Once tokens already served
        self._harness: LoopThread | None = None

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
        if self._harness is not None:
            raise RuntimeError("the fixture server is already started")
        harness = LoopThread(
            self._connection, self.host, self.port, name="rawsse-fixture-server", limit=MAX_HEAD
        )
        harness.start()
        self.port = harness.port
        self._harness = harness
        return self

    def close(self) -> None:
        """Stop serving: open connections are dropped; waits for the thread to end."""
        harness, self._harness = self._harness, None
        if harness is not None:
            harness.close()

    def __enter__(self) -> FixtureServer:
        return self.start()

    # -- HTTP ------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one_request(reader, writer):
                pass
        except (ClientGone, ConnectionError, asyncio.CancelledError):
            pass
        finally:
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
                await send_json(writer, 400, error_body(400, "incomplete request"), True)
            return False
        except asyncio.LimitOverrunError:
            body = error_body(431, "request head too large")
            await send_json(writer, 431, body, True)
            return False
        started = time.monotonic()
        exchange = _Exchange()
        reuse = False
        try:
            method, target, version, headers = parse_head(head)
            exchange.method, exchange.path = method, redact_url(target)
            reuse = keep_alive(version, headers)
            body = await read_body(reader, writer, headers)
            reuse = await self._route(writer, method, target, headers, body, exchange)
            reuse = reuse and keep_alive(version, headers)
        except BadRequest as exc:
            exchange.status = exc.status
            data = error_body(exc.status, exc.message)
            exchange.bytes = len(data)
            reuse = reuse and not exc.close
            await send_json(writer, exc.status, data, not reuse)
        except (ClientGone, ConnectionError):
            exchange.note = "client went away"
            reuse = False
        finally:
            self._log_line(writer, exchange, time.monotonic() - started)
        return reuse

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
                raise BadRequest(405, f"{method} {path}: only GET is allowed")
            data = json.dumps(models_document(self.fixtures)).encode("utf-8")
            exchange.status, exchange.bytes = 200, len(data)
            await send_json(writer, 200, data, False, head=method == "HEAD")
            return True
        if path == CHAT_PATH:
            if method != "POST":
                raise BadRequest(405, f"{method} {path}: only POST is allowed")
            return await self._chat(writer, headers, body, exchange)
        raise BadRequest(
            404,
            f"{method} {path}: not found (this server has POST {CHAT_PATH} and GET {MODELS_PATH})",
        )

    async def _chat(
        self,
        writer: asyncio.StreamWriter,
        headers: dict[str, str],
        body: bytes,
        exchange: _Exchange,
    ) -> bool:
        received = asyncio.get_running_loop().time()
        exchange.model, stream = requested(headers, body)
        fixture = find(self._by_name, self.models, exchange.model)
        faults = parse_faults(headers)
        resume = parse_resume_faults(headers)
        fresh = resume.once is None or resume.once not in self._spent
        if resume.once is not None:
            self._spent.add(resume.once)
        if not fresh:
            faults = Faults(speed=faults.speed)
        cassette = prepare(fixture.cassette, body, resume, self.seam, fresh=fresh)
        if not stream and cassette.status == 200:
            cassette = non_streaming(cassette)
        speed = self.speed if faults.speed is None else faults.speed
        exchange.status = cassette.status
        sent = [0]
        try:
            exchange.note = await serve_replay(writer, cassette, received, speed, faults, sent)
        finally:
            exchange.bytes = sent[0]
        return not exchange.note

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
        writer.write(response_head(204, response))
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
