"""``RelayApp``: a pure-ASGI app that streams chat completions to browsers.

Routes, relative to where the app is mounted (ASGI ``root_path``):

* ``POST /chat``: JSON ``{model, messages, ...}`` in, the relay event stream out;
* ``GET /chat/{stream_id}`` and ``DELETE /chat/{stream_id}``: resume or stop a
  resumable stream (with a ``store``; see ``_resumable``);
* ``GET /models``: the allowed models, as ``{"object": "list", "data": [{"id": ...}]}``;
* ``GET /rawsse.js`` and ``GET /rawsse.d.ts``: the browser client (404 when absent);
* ``GET /``: the demo page, when ``demo=True``.

Every refusal is JSON ``{"error": {"code": ..., "message": ...}}`` (OpenRouter's
shape) with a 4xx status.  While ``POST /chat`` waits for upstream, a task
watches for ``http.disconnect``: a browser that leaves cancels the upstream
request at once, also before the first token.

A relayed stream runs in the request's own task plus two tasks of no task group
(``spawn``): the disconnect watch and the pump's reader.  The request's task
waits for the reader before it returns.  A task group would hold a cancel
scope, an event and a wrapper per task: with thousands of streams open, a
tenth of what each stream holds.
"""

from __future__ import annotations

import functools
import importlib.resources
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio

from .._async_client import AsyncClient, AsyncStream
from .._client_config import ResumeArg, resume_policy
from .._errors import (
    APIConnectionError,
    APIStatusError,
    ConnectTimeout,
    RateLimitError,
    RawSSEError,
    StreamTimeout,
)
from ._encoder import RelayEncoder
from ._policy import DEFAULT_MAX_BODY, ChatRequest, Policy, Rejected
from ._pump import DEFAULT_MAX_BUFFER, Pump, spawn
from ._resumable import DEFAULT_LINGER, ResumableStreams
from ._store import StreamInfo, StreamStore, is_stream_id
from ._store_errors import StoreError, StreamNotFound

__all__ = ["Authorize", "RelayApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

Authorize = Callable[[Scope, bytes], "bool | int | str | Awaitable[bool | int | str | None] | None"]
"""``authorize(scope, body)``: True or None lets the request through; False or 403
refuses it with 403, 401 with 401 (sync or async).  A str lets it through and names
the user: a resumable stream is bound to it, and resuming or stopping the stream
(``body`` is then the stored request) needs the same name."""

log = logging.getLogger("rawsse.relay")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]
_STATIC = {
    "/rawsse.js": ("rawsse.js", b"text/javascript; charset=utf-8"),
    "/rawsse.d.ts": ("rawsse.d.ts", b"application/typescript; charset=utf-8"),
}
_JSON = b"application/json"
# Upstream refused the owner's credentials: the browser can fix nothing, so it is
# the relay's gateway failure, not the browser's 401.
_GATEWAY_STATUSES = frozenset({401})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _error_body(code: int | str, message: str, **more: Any) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, **more}
    return json.dumps({"error": error}, ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True, slots=True)
class _Call:
    """One HTTP request to the app: its ASGI scope and channels, method and CORS headers."""

    scope: Scope
    receive: Receive
    send: Send
    method: str
    cors: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class _Writing:
    """How each relayed stream is written (see ``RelayApp``'s arguments)."""

    heartbeat: float | None
    coalesce: float
    write_timeout: float
    max_buffer: int

    def encoder(self, now: float) -> RelayEncoder:
        return RelayEncoder(now, heartbeat=self.heartbeat, coalesce=self.coalesce)


class RelayApp:
    """Streams chat completions from the owner's ``client`` to browsers (ASGI).

    The browser never sees the key and controls nothing the owner did not allow:

    * ``client``: the owner's ``AsyncClient`` (key, base URL, headers, timeouts,
      retries); the app never closes it;
    * ``models``: the model ids a browser may ask for (400 for others);
    * ``params``: the request parameters a browser may set (default
      ``DEFAULT_PARAMS``); a request with others gets 400 naming them;
    * ``fixed``: parameters the owner sets on every request (they win);
    * ``caps``: upper bounds of numeric parameters, applied also when the browser
      sent none (``{"max_tokens": 1024}``);
    * ``max_body``: the largest request body in bytes (413; default 8 MiB);
    * ``authorize(scope, body)``: the owner's check (see ``Authorize``);
    * ``cors_origins``: origins allowed to call from other pages (``"*"`` for
      any); none by default.  A cross-origin ``POST /chat`` from an origin not
      listed gets 403, so other sites cannot spend the owner's credits;
    * ``demo``: serve the demo page at ``GET /``;
    * ``heartbeat``, ``coalesce``: see ``RelayEncoder``;
    * ``write_timeout``: seconds one write to a browser may block (a client that
      stopped reading) before the relay drops it and cancels upstream;
    * ``max_buffer``: bytes of upstream body that may wait for a slow browser
      before the relay stops reading upstream (default 256 KiB).
    * ``store``: a ``MemoryStore`` or ``RedisStore`` turns resumable streams on
      (``GET``/``DELETE /chat/{stream_id}``); ``linger``: seconds a stream goes on
      generating after its last reader left; ``fail_closed``: refuse new requests
      (503) while the store is unavailable, instead of streaming them unresumable.
    * ``resume``: a ``Resume`` policy (or True for ``Resume()``, False for none)
      continues an upstream stream that breaks in a new request; the browser sees
      one stream with a ``continued`` event at the seam.  None (the default) keeps
      the client's own default.
    """

    def __init__(
        self,
        client: AsyncClient,
        *,
        models: Iterable[str],
        params: Iterable[str] | None = None,
        fixed: Mapping[str, Any] | None = None,
        caps: Mapping[str, float] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        authorize: Authorize | None = None,
        cors_origins: Iterable[str] = (),
        demo: bool = False,
        heartbeat: float | None = 15.0,
        coalesce: float = 0.0,
        write_timeout: float = 30.0,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        store: StreamStore | None = None,
        linger: float = DEFAULT_LINGER,
        fail_closed: bool = False,
        resume: ResumeArg = None,
    ) -> None:
        resume_policy(resume, None)  # validates it
        self.client = client
        self.resume = resume
        self.policy = Policy.build(
            models=models, params=params, fixed=fixed, caps=caps, max_body=max_body
        )
        self.authorize = authorize
        self.cors_origins = frozenset(o.rstrip("/") for o in cors_origins)
        self.demo = demo
        self._writing = _Writing(heartbeat, coalesce, write_timeout, max_buffer)
        self._writing.encoder(0.0)  # validates heartbeat and coalesce now
        self.store = store
        self.fail_closed = fail_closed
        self._streams: ResumableStreams | None = None
        if store is not None:
            self._streams = ResumableStreams(
                store,
                client,
                self.policy,
                heartbeat=heartbeat,
                coalesce=coalesce,
                linger=linger,
                write_timeout=write_timeout,
                max_buffer=max_buffer,
                resume=resume,
            )
        self._files: dict[str, bytes | None] = {}

    def __repr__(self) -> str:
        return f"RelayApp(client={self.client!r}, models={list(self.policy.models)!r})"

    # -- ASGI -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            return  # websockets: not served (the server closes the connection)
        root = scope.get("root_path", "") or ""
        path: str = scope.get("path", "") or ""
        if root and path.startswith(root):
            path = path[len(root) :]
        cors = self._cors_headers(scope)
        try:
            await self._route(_Call(scope, receive, send, scope["method"], cors), path, root)
        except Rejected as exc:
            await _send_json(
                send,
                exc.status,
                _error_body(exc.error_code, exc.message),
                [*cors, *exc.headers.items()],
            )

    def _route(self, call: _Call, path: str, root: str) -> Awaitable[None]:
        """The request's handler, called (not awaited: one coroutine less per open
        stream), or ``Rejected``."""
        send, method, cors = call.send, call.method, call.cors
        if path == "":
            return _send(send, 307, b"", [("location", root + "/"), *cors])
        if path.startswith("/chat/"):
            return self._stream_route(call, path[len("/chat/") :])
        if path == "/chat":
            if method == "OPTIONS":
                return self._preflight(call)
            if method == "POST":
                return self._chat(call)
            raise Rejected(405, f"{method} {path}: use POST", headers={"allow": "POST, OPTIONS"})
        if method not in ("GET", "HEAD"):
            raise Rejected(405, f"{method} {path}: use GET", headers={"allow": "GET"})
        if path == "/models":
            data = [{"id": model} for model in self.policy.models]
            body = json.dumps({"object": "list", "data": data}).encode()
            return _send_json(send, 200, body, cors, head=method == "HEAD")
        if path in _STATIC or (path == "/" and self.demo):
            name, content_type = _STATIC.get(path, ("demo.html", b"text/html; charset=utf-8"))
            body_or_none = self._file(name)
            if body_or_none is None:
                raise Rejected(404, f"{path}: {name} is not installed with this rawsse")
            headers = [("content-type", content_type.decode()), ("cache-control", "no-cache")]
            return _send(send, 200, body_or_none, [*headers, *cors], head=method == "HEAD")
        routes = "POST /chat, GET /models, GET /rawsse.js" + (", GET /" if self.demo else "")
        raise Rejected(404, f"{method} {path}: not found (this relay serves {routes})")

    def _file(self, name: str) -> bytes | None:
        if name not in self._files:
            resource = importlib.resources.files(__package__ or "rawsse.relay").joinpath(name)
            self._files[name] = resource.read_bytes() if resource.is_file() else None
        return self._files[name]

    # -- CORS ---------------------------------------------------------------------------

    def _origin_allowed(self, origin: str) -> bool:
        return "*" in self.cors_origins or origin.rstrip("/") in self.cors_origins

    def _cors_headers(self, scope: Scope) -> list[tuple[str, str]]:
        origin = _header(scope, b"origin")
        if origin is None or not self.cors_origins or not self._origin_allowed(origin):
            return []
        return [
            ("access-control-allow-origin", origin),
            ("vary", "origin"),
            ("access-control-expose-headers", "retry-after, x-rawsse-stream-id"),
        ]

    async def _preflight(self, call: _Call) -> None:
        if not call.cors:
            raise Rejected(403, "this origin may not call the relay (CORS is off for it)")
        asked = _header(call.scope, b"access-control-request-headers") or "content-type"
        headers = [
            *call.cors,
            ("access-control-allow-methods", "POST, GET, DELETE, OPTIONS"),
            ("access-control-allow-headers", asked),
            ("access-control-max-age", "600"),
        ]
        await _send(call.send, 204, b"", headers)

    def _check_origin(self, scope: Scope) -> None:
        origin = _header(scope, b"origin")
        if origin is None or (self.cors_origins and self._origin_allowed(origin)):
            return
        host = _header(scope, b"host")
        if host is not None and urlsplit(origin).netloc.lower() == host.lower():
            return  # same origin
        raise Rejected(403, f"requests from {origin} are not allowed (not in cors_origins)")

    # -- POST /chat ---------------------------------------------------------------------

    async def _chat(self, call: _Call) -> None:
        scope, receive = call.scope, call.receive
        self._check_origin(scope)
        content_type = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            raise Rejected(415, "send the request as Content-Type: application/json")
        body = await self._read_body(scope, receive)
        if body is None:
            return  # the browser left while sending
        request = self.policy.check(body)
        owner = None if self.authorize is None else await self._authorize(scope, body)
        if self._streams is not None and await self._resumable(request, body, owner, call):
            return
        stream = self.client.stream(
            model=request.model, messages=request.messages, resume=self.resume, **request.params
        )
        # Neither the body nor its parsed form stays while the answer streams: a
        # long conversation would be held twice more per open stream.
        del body, request
        await self._relay(stream, call)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        limit = self.policy.max_body
        length = _header(scope, b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            raise Rejected(413, f"the request body is over {limit} bytes")
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise Rejected(413, f"the request body is over {limit} bytes")
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    async def _authorize(self, scope: Scope, body: bytes) -> str | None:
        """The user the hook names (None when it names none), or ``Rejected``."""
        assert self.authorize is not None
        verdict = self.authorize(scope, body)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if isinstance(verdict, str):
            return verdict
        if verdict is None or verdict is True:
            return None
        if verdict == 401:
            raise Rejected(401, "authentication required", headers={"www-authenticate": "Bearer"})
        raise Rejected(403, "not allowed")

    # -- resumable streams ------------------------------------------------------------

    async def _resumable(
        self, request: ChatRequest, body: bytes, owner: str | None, call: _Call
    ) -> bool:
        """Serve ``POST /chat`` as a resumable stream; False: serve it unresumable."""
        assert self._streams is not None
        try:
            started = await self._streams.start(request, body, owner)
        except StoreError as exc:
            if self.fail_closed:
                raise Rejected(503, f"the stream store is unavailable: {exc}") from None
            log.warning("resumable streams are unavailable, streaming without: %s", exc)
            return False
        if isinstance(started, RawSSEError):
            await _send_upstream_error(call.send, started, call.cors)
            return True
        headers = _stream_headers(started, call.cors)
        await self._streams.follow(started, 0, call.receive, call.send, headers)
        return True

    async def _stream_route(self, call: _Call, stream_id: str) -> None:
        scope, send, method, cors = call.scope, call.send, call.method, call.cors
        if method == "OPTIONS":
            await self._preflight(call)
            return
        if method not in ("GET", "DELETE"):
            raise Rejected(
                405,
                f"{method} /chat/{{id}}: use GET or DELETE",
                headers={"allow": "GET, DELETE, OPTIONS"},
            )
        streams = self._streams
        if streams is None:
            raise Rejected(404, "this relay keeps no streams (it has no store)")
        self._check_origin(scope)
        after = _position(scope) if method == "GET" else 0
        await self._stream_info(scope, stream_id)
        if method == "DELETE":
            try:
                await streams.store.cancel(stream_id)
            except StreamNotFound:
                raise Rejected(404, "unknown or expired stream") from None
            except StoreError as exc:
                raise Rejected(503, f"the stream store is unavailable: {exc}") from None
            body = json.dumps({"stream_id": stream_id, "cancelled": True}).encode()
            await _send_json(send, 200, body, cors)
            return
        headers = _stream_headers(stream_id, cors)
        await streams.follow(stream_id, after, call.receive, send, headers)

    async def _stream_info(self, scope: Scope, stream_id: str) -> StreamInfo:
        """The stream, if it exists and the caller may see it; else ``Rejected``."""
        assert self._streams is not None
        if not is_stream_id(stream_id):
            raise Rejected(404, "unknown or expired stream")
        try:
            info = await self._streams.store.info(stream_id)
        except StreamNotFound:
            raise Rejected(404, "unknown or expired stream") from None
        except StoreError as exc:
            raise Rejected(503, f"the stream store is unavailable: {exc}") from None
        owner = None if self.authorize is None else await self._authorize(scope, info.request)
        if info.owner is not None and owner != info.owner:
            raise Rejected(404, "unknown or expired stream")  # not this user's: never say so
        return info

    async def _relay(self, stream: AsyncStream, call: _Call) -> None:
        """Relay ``stream`` to the browser; a browser that leaves (watched from the
        start) or stops reading cancels ``scope``, and with it upstream."""
        send = call.send
        scope = anyio.CancelScope()
        stop_watching = spawn(functools.partial(_watch_disconnect, call.receive, scope.cancel))
        pump: Pump | None = None
        opened = False
        try:
            with scope:
                encoder = self._writing.encoder(anyio.current_time())
                try:
                    await stream.__aenter__()
                except RawSSEError as exc:
                    await _send_upstream_error(send, exc, call.cors)
                    return
                opened = True
                headers = [*SSE_HEADERS, *((k.encode(), v.encode()) for k, v in call.cors)]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                pump = self._pump(stream, encoder, send, scope)
                await _write(pump, send)
        finally:
            stop_watching()
            if opened:
                with anyio.CancelScope(shield=True):
                    if pump is not None:  # the reader releases the connection on its way out
                        pump.stop()
                        await pump.wait_stopped()
                    await stream.close()

    def _pump(
        self, stream: AsyncStream, encoder: RelayEncoder, send: Send, scope: anyio.CancelScope
    ) -> Pump:
        """The stream's pump, its reader and timer started; a stalled write cancels ``scope``."""

        def send_body(data: bytes) -> Awaitable[None]:
            # ``send``'s own awaitable: no coroutine of ours per event
            return send({"type": "http.response.body", "body": data, "more_body": True})

        pump = Pump(
            stream,
            encoder,
            max_buffer=self._writing.max_buffer,
            write_timeout=self._writing.write_timeout,
            on_stall=scope.cancel,  # the browser stopped reading for write_timeout: drop it
            send=send_body,
        )
        spawn(pump.read)
        spawn(pump.time)
        return pump


async def _write(pump: Pump, send: Send) -> None:
    """Send what the pump relays, from the opening comment to the terminal event."""
    try:
        data: bytes | None = pump.encoder.open(anyio.current_time())
        while data is not None:
            await send({"type": "http.response.body", "body": data, "more_body": True})
            data = await pump.next_bytes()
    finally:
        pump.stop()  # ends the timer; the reader has ended, is cancelled or drains
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    # After [DONE] the reader reads on until the body ends or the grace passes,
    # so a server that closes promptly leaves its connection in the pool.
    await pump.wait_stopped()


async def _watch_disconnect(receive: Receive, leave: Callable[[], object]) -> None:
    """Call ``leave`` when the browser leaves (also before the first token).  A
    failing ``receive`` counts as leaving: this task belongs to no group that
    could take its error."""
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception:
        log.warning("receive() failed; the stream is dropped", exc_info=True)
    leave()


def _stream_headers(stream_id: str, cors: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    cors_headers = [(k.encode(), v.encode()) for k, v in cors]
    return [*SSE_HEADERS, (b"x-rawsse-stream-id", stream_id.encode()), *cors_headers]


def _position(scope: Scope) -> int:
    """Where a resuming reader stands: ``Last-Event-ID``, else ``?after=``, else 0."""
    value = _header(scope, b"last-event-id")
    if value is None:
        query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
        value = query.get("after", ["0"])[-1]
    value = value.strip() or "0"
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise Rejected(400, f"Last-Event-ID / after must be an event id (an integer): {value!r}")
    return int(value)


async def _send_upstream_error(send: Send, exc: RawSSEError, cors: list[tuple[str, str]]) -> None:
    """Answer with what upstream said before any stream began, in a status the browser reads."""
    headers = list(cors)
    if isinstance(exc, APIStatusError):
        status = 502 if exc.status in _GATEWAY_STATUSES else exc.status
        message = exc.message
        if exc.status in _GATEWAY_STATUSES:
            message = f"upstream refused the relay's credentials (HTTP {exc.status}): {message}"
        retry_after = exc.headers.get("retry-after") or exc.headers.get("Retry-After")
        if retry_after is None and isinstance(exc, RateLimitError) and exc.retry_after is not None:
            retry_after = str(max(0, round(exc.retry_after)))
        if retry_after is not None:
            headers.append(("retry-after", retry_after))
        more = {} if exc.metadata is None else {"metadata": exc.metadata}
        code = exc.code if exc.code is not None else exc.status
        body = _error_body(code if status == exc.status else status, message, **more)
    elif isinstance(exc, (ConnectTimeout, StreamTimeout)):
        status = 504
        body = _error_body(504, f"upstream timed out: {exc}")
    elif isinstance(exc, APIConnectionError):
        status = 502
        body = _error_body(502, f"upstream unreachable: {exc}")
    else:
        status = 502
        body = _error_body(502, f"upstream failed: {exc}")
    await _send_json(send, status, body, headers)


async def _send(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[str, str]], *, head: bool = False
) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _send_json(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[str, str]], *, head: bool = False
) -> None:
    await _send(send, status, body, [("content-type", "application/json"), *headers], head=head)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
