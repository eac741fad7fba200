"""``ReplayTransport``: serve cassettes as a sync and async httpx transport, never the network.

A replay is planned without I/O (``rawsse._replay_plan``: which bytes, in which
pieces, at which offsets, with which stall and which ending, the same plan the
fixture server serves); the sync and async shells only sleep (``time.sleep`` /
``anyio.sleep``) and yield.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

import anyio
import httpx

from ._cassette import MAX_SECONDS, Cassette, load_cassettes
from ._errors import CassetteError
from ._replay_plan import MIN_SPEED, Chunking, ReplayPlan, plan_replay

__all__ = ["CassetteSource", "Chunking", "Match", "ReplayTransport", "Timing"]

CassetteSource: TypeAlias = "str | os.PathLike[str] | Cassette"
Match: TypeAlias = Literal["path", "model", "body"]
Timing: TypeAlias = Literal["instant", "recorded"]


def _load(source: CassetteSource | Iterable[CassetteSource]) -> list[Cassette]:
    if isinstance(source, Cassette):
        return [source]
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            files = sorted(path.glob("*.jsonl"))
            if not files:
                raise CassetteError(f"{path}: no cassettes (*.jsonl) in this directory")
            return [c for p in files for c in load_cassettes(p)]
        return load_cassettes(path)  # every exchange a file holds, in order
    out: list[Cassette] = []
    for item in source:
        out += _load(item)
    return out


def _request_body(request: httpx.Request) -> Any:
    try:
        return json.loads(request.content)
    except (ValueError, UnicodeDecodeError, httpx.RequestNotRead):
        return None


def _model(body: Any) -> str | None:
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


class ReplayTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Serve recorded exchanges to ``httpx.Client`` or ``httpx.AsyncClient``.

    ``cassettes``: a file (every exchange it holds, in order), a directory (its
    ``*.jsonl``), a ``Cassette``, or a list of these.  A request is matched by
    method and URL path, plus the body's ``model`` (``match="model"``) or the
    whole JSON body (``match="body"``); when
    several match, each is served once in order before any repeats.  A request
    that matches none raises ``CassetteError`` listing what there is.

    The consumer gets exactly the recorded bytes; the options change only:

    - ``timing``: ``"instant"`` (the default) or ``"recorded"``; ``speed=10``
      plays the recorded timing ten times faster (and implies ``"recorded"``).
    - ``chunking``: ``"recorded"``, ``"byte"`` (one byte per chunk), an ``int``
      N (N bytes per chunk) or ``"random"`` (1..64 bytes, from ``seed``).  A piece
      is served when its last byte was recorded to arrive.
    - ``cut_after=N``: after exactly N body bytes raise ``cut_error`` (default
      ``httpx.RemoteProtocolError``, what httpx raises for a cut chunked body).
    - ``stall_at=N, stall_for=S``: wait S seconds before body byte N (N=0: before
      the first byte; past the end: before the end).
    - ``status``: serve this HTTP status instead of the recorded one.

    A cassette that ended in error is replayed with that error (its httpx class
    when it is one, else ``httpx.ReadError``); one that ended ``closed`` or
    ``missing`` raises ``httpx.RemoteProtocolError`` where the recording stops.
    ``played`` lists ``(request, cassette)`` for every request served.
    """

    def __init__(
        self,
        cassettes: CassetteSource | Iterable[CassetteSource],
        *,
        match: Match = "path",
        timing: Timing | None = None,
        speed: float | None = None,
        chunking: Chunking = "recorded",
        seed: int = 0,
        cut_after: int | None = None,
        cut_error: type[httpx.TransportError] = httpx.RemoteProtocolError,
        stall_at: int | None = None,
        stall_for: float = 0.0,
        status: int | None = None,
    ) -> None:
        if match not in ("path", "model", "body"):
            raise ValueError(f"match must be 'path', 'model' or 'body': {match!r}")
        if timing not in (None, "instant", "recorded"):
            raise ValueError(f"timing must be 'instant' or 'recorded': {timing!r}")
        if speed is not None:
            if not speed >= MIN_SPEED:
                raise ValueError(f"speed must be at least {MIN_SPEED:g}: {speed!r}")
            if timing == "instant":
                raise ValueError("speed= needs recorded timing; drop timing='instant'")
        if isinstance(chunking, bool) or not (
            chunking in ("recorded", "byte", "random")
            or (isinstance(chunking, int) and chunking > 0)
        ):
            raise ValueError(
                f"chunking must be 'recorded', 'byte', 'random' or a size > 0: {chunking!r}"
            )
        for name, value in (("cut_after", cut_after), ("stall_at", stall_at)):
            if value is not None and (isinstance(value, bool) or value < 0):
                raise ValueError(f"{name} must be >= 0: {value!r}")
        if not 0 <= stall_for <= MAX_SECONDS:
            raise ValueError(f"stall_for must be from 0 to {MAX_SECONDS:g} seconds: {stall_for!r}")
        if status is not None and not 100 <= status <= 999:
            raise ValueError(f"status must be an HTTP status: {status!r}")
        self.cassettes = _load(cassettes)
        if not self.cassettes:
            raise CassetteError("ReplayTransport needs at least one cassette")
        self.match: Match = match
        self.timed = speed is not None or timing == "recorded"
        self.speed = speed if speed is not None else 1.0
        self.chunking = chunking
        self.seed = seed
        self.cut_after = cut_after
        self.cut_error = cut_error
        self.stall_at = stall_at
        self.stall_for = stall_for
        self.status = status
        self.played: list[tuple[httpx.Request, Cassette]] = []
        self._plays = [0] * len(self.cassettes)

    def __repr__(self) -> str:
        return f"ReplayTransport({len(self.cassettes)} cassette(s), match={self.match!r})"

    # -- choosing -------------------------------------------------------------------------

    def _matches(self, cassette: Cassette, request: httpx.Request, body: Any) -> bool:
        if cassette.method != request.method.upper():
            return False
        if urlsplit(cassette.url).path.rstrip("/") != request.url.path.rstrip("/"):
            return False
        if self.match == "model":
            return cassette.model == _model(body)
        if self.match == "body":
            return bool(cassette.request.get("body") == body)
        return True

    def choose(self, request: httpx.Request) -> Cassette:
        """The cassette that answers ``request`` (counted as played)."""
        body = _request_body(request)
        found = [i for i, c in enumerate(self.cassettes) if self._matches(c, request, body)]
        if not found:
            raise CassetteError(self._no_match(request, body))
        index = min(found, key=lambda i: self._plays[i])  # min() keeps the first of equals
        self._plays[index] += 1
        cassette = self.cassettes[index]
        self.played.append((request, cassette))
        return cassette

    def _no_match(self, request: httpx.Request, body: Any) -> str:
        want = f"{request.method} {request.url.path}"
        if self.match == "model":
            want += f" (model {_model(body)!r})"
        elif self.match == "body":
            want += " with this exact body"
        lines = [f"no cassette matches {want} (match={self.match!r}); available:"]
        for c in self.cassettes:
            where = f" [{c.path}]" if c.path is not None else ""
            model = f" (model {c.model!r})" if c.model is not None else ""
            lines.append(f"  - {c.name}: {c.method} {urlsplit(c.url).path}{model}{where}")
        return "\n".join(lines)

    # -- planning (no I/O) ----------------------------------------------------------------

    def _plan(self, cassette: Cassette) -> ReplayPlan:
        return plan_replay(
            cassette,
            scale=1.0 / self.speed,
            chunking=self.chunking,
            seed=self.seed,
            cut_after=self.cut_after,
            stall_at=self.stall_at,
        )

    def _error(
        self, plan: ReplayPlan, cassette: Cassette, request: httpx.Request
    ) -> Exception | None:
        """The httpx exception that ends the body as the plan says (None: a clean end)."""
        if plan.end == "cut":
            return self.cut_error(
                "peer closed connection without sending complete message body "
                f"(rawsse replay: cut after {self.cut_after} bytes)",
                request=request,
            )
        if plan.end == "error":
            return _recorded_error(plan.error or "", request)
        if plan.end == "missing":
            return httpx.RemoteProtocolError(
                f"cassette {cassette.name!r} ends here (recorded end: {cassette.end}); "
                "the rest of the body was never recorded",
                request=request,
            )
        return None

    def _response(self, cassette: Cassette, stream: Any) -> httpx.Response:
        return httpx.Response(
            self.status if self.status is not None else cassette.status,
            headers=list(cassette.headers.items()),
            stream=stream,
            extensions={"http_version": b"HTTP/1.1"},
        )

    # -- httpx.BaseTransport ----------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        start = time.monotonic()
        cassette = self.choose(request)
        plan = self._plan(cassette)
        error = self._error(plan, cassette, request)
        if self.timed:
            _sleep_until(start + plan.head_t)
        return self._response(cassette, _SyncReplay(self, plan, error, start))

    # -- httpx.AsyncBaseTransport -----------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        start = anyio.current_time()
        cassette = self.choose(request)
        plan = self._plan(cassette)
        error = self._error(plan, cassette, request)
        if self.timed:
            await _asleep_until(start + plan.head_t)
        return self._response(cassette, _AsyncReplay(self, plan, error, start))


def _recorded_error(error: str, request: httpx.Request) -> Exception:
    name, _, message = error.partition(": ")
    cls = getattr(httpx, name, None)
    if isinstance(cls, type) and issubclass(cls, httpx.TransportError):
        exc: Exception = cls(message or name, request=request)
        return exc
    return httpx.ReadError(f"recorded error: {error}", request=request)


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


async def _asleep_until(deadline: float) -> None:
    delay = deadline - anyio.current_time()
    if delay > 0:
        await anyio.sleep(delay)


class _Replay:
    """A planned body being served: the plan, the error that ends it, the start time."""

    def __init__(
        self, owner: ReplayTransport, plan: ReplayPlan, error: Exception | None, start: float
    ) -> None:
        self._owner = owner
        self._plan = plan
        self._error = error
        self._start = start


class _SyncReplay(_Replay, httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        owner, plan, start = self._owner, self._plan, self._start
        for step in plan.steps():
            if step is None:
                time.sleep(owner.stall_for)
                start += owner.stall_for
                continue
            if owner.timed:
                _sleep_until(start + step[0])
            yield step[1]
        if owner.timed:
            _sleep_until(start + plan.end_t)
        if self._error is not None:
            raise self._error


class _AsyncReplay(_Replay, httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        owner, plan, start = self._owner, self._plan, self._start
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep
        for step in plan.steps():
            if step is None:
                await sleep(owner.stall_for)
                start += owner.stall_for
                continue
            if owner.timed:
                await _asleep_until(start + step[0])
            yield step[1]
        if owner.timed:
            await _asleep_until(start + plan.end_t)
        if self._error is not None:
            raise self._error
