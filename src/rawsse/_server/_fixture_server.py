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
from collections.abc import Iterable
from typing import IO
from urllib.parse import unquote

from .._closing import ClosesOnExit
from .._redact import redact_url
from .._replay_plan import MIN_SPEED
from ._cors import CorsPolicy
from ._emulation import (
    API_PREFIX,
    CHAT_PATH,
    MODELS_PATH,
    Fixture,
    ambiguous_models,
    find,
    load_fixtures,
    model_object,
    models_document,
    non_streaming,
    requested,
    streaming,
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
from ._limits import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    Connections,
    QuietLog,
    default_max_connections,
)
from ._prefill import Seam, parse_resume_faults, prepare

__all__ = ["FixtureServer"]


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
    scales the recorded timing (2: twice as fast; 0: no waiting; at least
    ``MIN_SPEED`` otherwise); ``log``, when given, gets one line per request
    (method, path, model, status, body bytes, duration; never a header, so never
    a key); ``seam`` is the quirk of continuations from a prefill (``Seam`` or
    ``"none"``, ``"trim"``, ``"repeat:N"``).

    Limits: a connection may wait ``idle_timeout`` seconds for a request's first
    byte, then has ``header_timeout`` seconds to complete its head (and as long
    again for its body); at most ``max_connections`` are open (None: the
    open-file limit less 200, at most 10,000), the longest-waiting idle one
    closed to make room for a new one, a new one refused with a 503 when all
    are busy.  Errors of the server itself go to the
    ``rawsse.server`` logger, each kind at most once a minute.

    CORS: pages served from loopback (``http://localhost:*``,
    ``http://127.0.0.1:*``, ``http://[::1]:*``) may read the answers; add origins
    with ``cors_origins`` (``http://host:port``, ``http://host:*``, ``null``) or
    allow every origin with ``cors_any``.  Use it as a context manager::

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
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_connections: int | None = None,
        cors_origins: Iterable[str] = (),
        cors_any: bool = False,
    ) -> None:
        if math.isnan(speed) or speed < 0 or 0 < speed < MIN_SPEED:
            raise ValueError(f"speed must be 0 or at least {MIN_SPEED:g}, not {speed!r}")
        for name, seconds in (("header_timeout", header_timeout), ("idle_timeout", idle_timeout)):
            if not 0 < seconds < math.inf:
                raise ValueError(f"{name} must be a number of seconds > 0: {seconds!r}")
        if max_connections is None:
            max_connections = default_max_connections()
        if isinstance(max_connections, bool) or max_connections < 1:
            raise ValueError(f"max_connections must be at least 1: {max_connections!r}")
        self.cors = CorsPolicy.build(cors_origins, any_origin=cors_any)
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
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._errors = QuietLog()
        self._connections = Connections(max_connections)
        self._refusing = 0
        self._harness: LoopThread | None = None

    # -- lifecycle -------------------------------------------------------------------

    @property
    def models(self) -> list[str]:
        """The model ids served, in file name order."""
        return [f.id for f in self.fixtures]

    @property
    def ambiguous(self) -> dict[str, tuple[str, list[str]]]:
        """Each model id recorded by several cassettes: the cassette it resolves to, and
        the ids that reach each of them (``{model: (name, [ids])}``)."""
        return {
            model: (chosen.name, [f.id for f in group])
            for model, (chosen, group) in ambiguous_models(self.fixtures).items()
        }

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
        self._connections = Connections(self.max_connections)
        harness = LoopThread(
            self._connection,
            self.host,
            self.port,
            name="rawsse-fixture-server",
            limit=MAX_HEAD,
            exception_handler=self._errors.loop_error,
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
        connections = self._connections
        try:
            if not connections.admit(writer):
                await self._refuse(reader, writer)
                return
            while await self._one_request(reader, writer):
                pass
        except (ClientGone, ConnectionError, asyncio.CancelledError):
            pass
        except Exception as exc:  # a bug: say so once, keep serving the others
            self._errors.report("internal error", f"{type(exc).__name__}: {exc}")
        finally:
            connections.release(writer)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer 503 to a connection over the cap, at once."""
        self._errors.report("connection refused", f"all {self.max_connections} connections busy")
        if self._refusing < self.max_connections:
            # Read the head first: closing on unread bytes would reset the connection
            # and lose the answer.  Bounded, so refusals cannot pile up.
            self._refusing += 1
            try:
                with contextlib.suppress(asyncio.TimeoutError, asyncio.IncompleteReadError):
                    await asyncio.wait_for(
                        reader.readuntil(b"\r\n\r\n"), min(self.header_timeout, 1.0)
                    )
            except asyncio.LimitOverrunError:
                pass
            finally:
                self._refusing -= 1
        body = error_body(503, f"the server is busy ({self.max_connections} connections)")
        await send_json(writer, 503, body, True)

    async def _read_head(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        """The next request head; ``b""`` when the connection must end (answered if need be)."""
        connections = self._connections
        connections.idle(writer)
        first = b""
        try:
            first = await asyncio.wait_for(reader.read(1), self.idle_timeout)
            if not first:
                return b""
            rest = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.header_timeout)
        except asyncio.IncompleteReadError as exc:
            if (first + exc.partial).strip() and connections.busy(writer):
                await send_json(writer, 400, error_body(400, "incomplete request"), True)
            return b""
        except asyncio.LimitOverrunError:
            if connections.busy(writer):
                await send_json(writer, 431, error_body(431, "request head too large"), True)
            return b""
        except asyncio.TimeoutError:
            # Nothing sent: an idle keep-alive connection, closed quietly.
            if first and connections.busy(writer):
                message = f"no complete request head in {self.header_timeout:g} s"
                self._errors.report("header timeout", message)
                await send_json(writer, 408, error_body(408, message), True)
            return b""
        if not connections.busy(writer):
            return b""
        return first + rest

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; True when the connection may carry another."""
        head = await self._read_head(reader, writer)
        if not head:
            return False
        started = time.monotonic()
        exchange = _Exchange()
        reuse = False
        cors: list[tuple[str, str]] = []
        try:
            method, target, version, headers = parse_head(head)
            exchange.method, exchange.path = method, redact_url(target)
            cors = self.cors.response_headers(headers)
            reuse = keep_alive(version, headers)
            try:
                body = await asyncio.wait_for(
                    read_body(reader, writer, headers), self.header_timeout
                )
            except asyncio.TimeoutError:
                message = f"no complete request body in {self.header_timeout:g} s"
                raise BadRequest(408, message, close=True) from None
            reuse = await self._route(writer, method, target, headers, body, exchange)
            reuse = reuse and keep_alive(version, headers)
        except BadRequest as exc:
            exchange.status = exc.status
            data = error_body(exc.status, exc.message)
            exchange.bytes = len(data)
            reuse = reuse and not exc.close
            await send_json(writer, exc.status, data, not reuse, cors=cors)
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
            head = response_head(
                204, [*self.cors.preflight_headers(headers), ("content-length", "0")]
            )
            writer.write(head)
            await writer.drain()
            return True
        if path == MODELS_PATH:
            if method not in ("GET", "HEAD"):
                raise BadRequest(405, f"{method} {path}: only GET is allowed")
            data = json.dumps(models_document(self.fixtures)).encode("utf-8")
            exchange.status, exchange.bytes = 200, len(data)
            cors = self.cors.response_headers(headers)
            await send_json(writer, 200, data, False, head=method == "HEAD", cors=cors)
            return True
        if path.startswith(MODELS_PATH + "/"):
            if method not in ("GET", "HEAD"):
                raise BadRequest(405, f"{method} {path}: only GET is allowed")
            wanted = unquote(path[len(MODELS_PATH) + 1 :])
            fixture = find(self._by_name, self.models, wanted)
            data = json.dumps(model_object(fixture)).encode("utf-8")
            exchange.status, exchange.bytes = 200, len(data)
            cors = self.cors.response_headers(headers)
            await send_json(writer, 200, data, False, head=method == "HEAD", cors=cors)
            return True
        if path == CHAT_PATH:
            if method != "POST":
                raise BadRequest(405, f"{method} {path}: only POST is allowed")
            return await self._chat(writer, headers, body, exchange)
        raise BadRequest(
            404,
            f"{method} {path}: not found (this server has POST {CHAT_PATH}, GET {MODELS_PATH} "
            f"and GET {MODELS_PATH}/{{id}})",
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
        if cassette.status == 200:
            cassette = streaming(cassette) if stream else non_streaming(cassette)
        speed = self.speed if faults.speed is None else faults.speed
        exchange.status = cassette.status
        sent = [0]
        try:
            exchange.note = await serve_replay(
                writer, cassette, received, speed, faults, sent, self.cors.response_headers(headers)
            )
        finally:
            exchange.bytes = sent[0]
        return not exchange.note

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
