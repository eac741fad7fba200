"""Resumable relay streams: a producer writes each stream to a store; every response follows it.

One stream, one producer at a time: the task that reads upstream, encodes with
``RelayEncoder`` and appends the data events to the store.  It runs apart from
any HTTP request, so a browser that leaves does not stop it; every response
(the ``POST`` that started the stream, and each ``GET`` that resumes it, on any
instance) is a follower: it replays the stored events after its position and
follows live ones, with heartbeats of its own.

The producer, about every second: waits for a cancel (``DELETE``: it stops
upstream at once), renews its lease (lost: it stops without writing), and asks
whether anyone follows (nobody for ``linger`` seconds: it stops upstream).

Takeover: a follower whose stream has no live producer (the lease expired:
the producing instance died) takes the lease, and of all followers on all
instances exactly one gets it.  It continues upstream by assistant prefill (as
``rawsse.Resume`` does): the stored request again, plus the text of choice 0
stored so far as a trailing assistant message; it writes a ``continued`` event,
then only new text (a repeat of the stored text's end is removed at the seam by
the same joiner).  A stream that has delivered a tool call, or has several
choices, is not continued: it ends with an ``error`` event (``producer_lost``)
that keeps the delivered text.

Local followers (in the producer's process) get each event from the producer as
soon as the store has it, without reading the store; others read the store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from collections.abc import AsyncGenerator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import aclosing
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import anyio

from .._async_client import AsyncClient, AsyncStream
from .._chat_events import ChatEvent, Finish, TextDelta
from .._client_config import ResumeArg
from .._errors import RawSSEError
from .._seam import OverlapJoiner
from ._encoder import OPENING, RelayEncoder
from ._policy import ChatRequest, Policy, Rejected
from ._pump import DEFAULT_MAX_BUFFER, Pump, spawn
from ._store import StoredEvent, StreamStore, choice_texts, parse_events, sse_bytes
from ._store_errors import LeaseLost, StoreError, StoreUnavailable, StreamNotFound

__all__ = ["DEFAULT_LINGER", "ResumableStreams"]

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]

DEFAULT_LINGER = 30.0
"""Seconds a stream goes on generating after its last follower left."""

_UPKEEP = 1.0
"""Seconds between a producer's lease renewals (and a follower's producer checks)."""

_TERMINAL = frozenset({"done", "error"})

log = logging.getLogger("rawsse.relay")


@dataclass(eq=False)
class ResumableStreams:
    """The producers and followers of one relay's resumable streams."""

    store: StreamStore
    client: AsyncClient
    policy: Policy
    _: KW_ONLY
    heartbeat: float | None
    coalesce: float
    linger: float = DEFAULT_LINGER
    write_timeout: float = 30.0
    max_buffer: int = DEFAULT_MAX_BUFFER
    resume: ResumeArg = None
    instance: str = field(init=False, default_factory=lambda: secrets.token_hex(6))
    """Starts every lease holder's name: which process produces a stream."""
    _hubs: dict[str, _Hub] = field(init=False, default_factory=dict)
    """The streams whose producer runs here, for the followers here."""

    def __post_init__(self) -> None:
        if not self.linger >= 0:
            raise ValueError(f"linger must be >= 0 seconds: {self.linger!r}")

    def _holder(self) -> str:
        return f"{self.instance}-{secrets.token_hex(4)}"

    # -- producing ------------------------------------------------------------------------

    async def start(
        self, request: ChatRequest, body: bytes, owner: str | None
    ) -> str | RawSSEError:
        """Create the stored stream, open upstream and start producing.

        Returns the stream id, or upstream's refusal
        (the stored stream then ends with it).  ``StoreError`` when the store
        cannot create the stream (nothing was sent upstream).
        """
        holder = self._holder()
        stream_id = await self.store.create(body, owner=owner, holder=holder)
        encoder = RelayEncoder(
            anyio.current_time(), heartbeat=None, coalesce=self.coalesce, stream_id=stream_id
        )
        upstream = self.client.stream(
            model=request.model, messages=request.messages, resume=self.resume, **request.params
        )
        try:
            await upstream.__aenter__()
        except RawSSEError as exc:
            await self._abandon(stream_id, holder, encoder.fail(exc))
            return exc
        except BaseException:
            with anyio.CancelScope(shield=True):
                await upstream.close()
                await self._abandon(stream_id, holder, encoder.cancel())
            raise
        self._spawn(stream_id, holder, Pump(upstream, encoder, max_buffer=self.max_buffer))
        return stream_id

    async def _abandon(self, stream_id: str, holder: str, data: bytes) -> None:
        """End a stream with the encoder's terminal output, best effort."""
        try:
            await self.store.finish(stream_id, holder, parse_events(data))
        except StoreError as exc:
            log.warning("stream %s: could not store its end: %s", stream_id, exc)

    def _spawn(
        self,
        stream_id: str,
        holder: str,
        pump: Pump,
        first: Sequence[StoredEvent] = (),
    ) -> None:
        hub = self._hubs[stream_id] = _Hub(first[0].seq if first else pump.encoder.last_id + 1)

        async def run() -> None:
            try:
                await self._produce(stream_id, holder, pump, hub, first)
            except Exception:  # a detached task: report, never raise
                log.exception("stream %s: the producer failed", stream_id)
            finally:
                hub.close()
                if self._hubs.get(stream_id) is hub:
                    del self._hubs[stream_id]

        spawn(run)

    async def _produce(
        self,
        stream_id: str,
        holder: str,
        pump: Pump,
        hub: _Hub,
        first: Sequence[StoredEvent],
    ) -> None:
        store = self.store
        encoder = pump.encoder
        async with anyio.create_task_group() as group:
            group.start_soon(pump.read)
            group.start_soon(pump.time)
            group.start_soon(self._upkeep, stream_id, holder, pump, hub, group.cancel_scope)
            try:
                if first:
                    await store.append(stream_id, holder, first)
                    hub.publish(first)
                while True:
                    data = await pump.next_bytes()
                    if data is None:
                        break
                    events = parse_events(data)
                    if not events:
                        continue
                    # Stored first, then shown: whatever a browser saw survives this process.
                    await self._store(stream_id, holder, events, final=encoder.closed)
                    hub.publish(events)
                await pump.wait_stopped()  # after [DONE]: until the body ends or the grace
            except LeaseLost as exc:
                # Another instance produces it now: local followers read the store.
                log.warning("stream %s: producer stops: %s", stream_id, exc)
            except StoreError as exc:
                # Nothing more can be delivered: stop upstream, and tell the followers here.
                log.warning("stream %s: producer stops: %s", stream_id, exc)
                hub.close(exc)
            group.cancel_scope.cancel()

    async def _store(
        self, stream_id: str, holder: str, events: list[StoredEvent], *, final: bool
    ) -> None:
        """Append (or finish), once more after a timeout: a write that did land is
        skipped by its sequence numbers, so only a store that stays silent fails it."""
        write = self.store.finish if final else self.store.append
        try:
            await write(stream_id, holder, events)
        except StoreUnavailable:
            await write(stream_id, holder, events)

    async def _upkeep(
        self, stream_id: str, holder: str, pump: Pump, hub: _Hub, scope: anyio.CancelScope
    ) -> None:
        """About every second: a cancel stops upstream at once (the encoder then ends
        the stream with status ``cancelled``), a lost lease stops this producer, and
        nobody following for ``linger`` seconds stops upstream."""
        store = self.store
        followed_at = anyio.current_time()
        try:
            while True:
                if await store.wait_cancelled(stream_id, _UPKEEP):
                    pump.stop()
                    return
                renewal = await store.renew_lease(stream_id, holder)
                if not renewal.held:
                    if not pump.encoder.closed:  # else it just ended: nothing to renew
                        log.warning("stream %s: the lease went to another producer", stream_id)
                        scope.cancel()
                    return
                if renewal.cancelled:
                    pump.stop()
                    return
                now = anyio.current_time()
                if renewal.followed or hub.followers:
                    followed_at = now
                elif now - followed_at >= self.linger:
                    pump.stop()
                    return
        except StoreError as exc:
            log.warning("stream %s: producer stops: %s", stream_id, exc)
            hub.close(exc)
            scope.cancel()

    # -- takeover -------------------------------------------------------------------------

    async def _take_over(self, stream_id: str) -> None:
        """Continue a stream whose producer died, if this instance wins its lease."""
        store = self.store
        holder = self._holder()
        if not await store.acquire_lease(stream_id, holder):
            return
        info = await store.info(stream_id)
        events = await store.read(stream_id)
        last = info.last_seq
        delivered = choice_texts(events).get(0, "")

        async def end(status: str, message: str, code: str | None) -> None:
            event = _error_event(last + 1, status, message, code, delivered)
            await self._abandon(stream_id, holder, sse_bytes([event]))

        if info.cancelled:
            await end("cancelled", "the stream was cancelled", None)
            return
        refusal = _not_continuable(events)
        try:
            request = self.policy.check(info.request)
        except Rejected as exc:
            refusal = f"its request is no longer allowed: {exc.message}"
        if refusal is not None:
            await end("error", f"the stream's producer stopped; {refusal}", "producer_lost")
            return
        messages = list(request.messages)
        if delivered.strip():
            # Providers refuse a prefill that ends in whitespace; the joiner drops
            # the whitespace again if the continuation repeats it.
            messages.append({"role": "assistant", "content": delivered.rstrip()})
        upstream = self.client.stream(model=request.model, messages=messages, **request.params)
        try:
            await upstream.__aenter__()
        except RawSSEError as exc:
            await end("error", f"continuing the stream failed: {exc}", "producer_lost")
            return
        # The encoder numbers a ``start`` event first, which the stream already has:
        # it gets the last stored id and is dropped, so the new events follow on.
        encoder = RelayEncoder(
            anyio.current_time(),
            heartbeat=None,
            coalesce=self.coalesce,
            stream_id=stream_id,
            next_id=last,
        )
        attempt = 1 + sum(1 for e in events if e.name == "continued")
        first = parse_events(encoder.continued("cut", attempt, anyio.current_time()))[1:]
        pump = _JoinedPump(
            upstream, encoder, max_buffer=self.max_buffer, joiner=OverlapJoiner(delivered)
        )
        log.info("stream %s: taken over after event %d (attempt %d)", stream_id, last, attempt)
        self._spawn(stream_id, holder, pump, first)

    # -- following ------------------------------------------------------------------------

    async def follow(
        self,
        stream_id: str,
        after: int,
        receive: Receive,
        send: Send,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        """Answer with the stream's events after ``after``, then live ones, to the end.

        A browser that leaves ends only this response.  A failing store ends it
        with an ``error`` event (its ``text`` is what this response carried).
        """
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        lock = anyio.Lock()
        state: dict[str, float] = {"written": anyio.current_time()}
        last = after
        texts: list[str] = []

        async def write(data: bytes) -> None:
            async with lock:
                with anyio.move_on_after(self.write_timeout) as timed:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                state["written"] = anyio.current_time()
            if timed.cancelled_caught:  # the browser stopped reading: drop it
                group.cancel_scope.cancel()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        async def heartbeats() -> None:
            if self.heartbeat is None:
                return
            while True:
                due = state["written"] + self.heartbeat
                if anyio.current_time() >= due:
                    await write(b": hb\n\n")
                else:
                    await anyio.sleep_until(due)

        async def producer_check() -> None:
            while True:
                await anyio.sleep(_UPKEEP)
                if stream_id in self._hubs:
                    continue
                try:
                    info = await self.store.info(stream_id)
                    if info.finished:
                        return
                    if info.holder is None:
                        await self._take_over(stream_id)
                except StoreError:
                    return  # the follower hears of it from the store too

        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            group.start_soon(heartbeats)
            group.start_soon(producer_check)
            await write(OPENING)
            try:
                async with aclosing(self._events(stream_id, after)) as batches:
                    async for batch in batches:
                        await write(sse_bytes(batch))
                        last = batch[-1].seq
                        # Kept unparsed: only an error event needs the text.
                        texts.extend(e.data for e in batch if e.name == "text")
            except StoreError as exc:
                await write(_store_error(exc, last + 1, _joined_text(texts)))
            group.cancel_scope.cancel()
        # The browser may be gone: then the end is not sent.
        with (
            anyio.CancelScope(shield=True),
            anyio.move_on_after(self.write_timeout),
            contextlib.suppress(OSError),
        ):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _events(self, stream_id: str, after: int) -> AsyncGenerator[list[StoredEvent], None]:
        """The events after ``after``, in batches: from this process's producer while it
        has them (no store round trip; one batch per store write), else from the store."""
        position = after
        hub = self._hubs.get(stream_id)
        if hub is not None:
            hub.followers += 1
            try:
                while True:
                    changed = hub.changed
                    if position + 1 < hub.first:
                        break  # fell behind what the hub keeps
                    fresh = hub.after(position)
                    if fresh:
                        yield fresh
                        position = fresh[-1].seq
                        if fresh[-1].name in _TERMINAL:
                            return
                    if hub.error is not None:
                        raise hub.error
                    if hub.closed:
                        break  # the producer here stopped: another may go on
                    if not fresh:
                        await changed.wait()
            finally:
                hub.followers -= 1
        async with aclosing(self.store.follow(stream_id, position)) as stored:
            async for event in stored:
                yield [event]


class _Hub:
    """A local producer's latest events, handed to the followers in the same process."""

    __slots__ = ("changed", "closed", "error", "events", "first", "followers")

    KEEP = 256
    """Events kept: a follower further behind reads the store."""

    def __init__(self, first: int) -> None:
        self.first = first
        """The seq of ``events[0]``."""
        self.events: list[StoredEvent] = []
        self.changed = anyio.Event()
        self.closed = False
        self.error: StoreError | None = None
        self.followers = 0

    def after(self, position: int) -> list[StoredEvent]:
        return self.events[max(position + 1 - self.first, 0) :]

    def publish(self, events: Sequence[StoredEvent]) -> None:
        self.events.extend(events)
        if len(self.events) > self.KEEP:
            drop = len(self.events) - self.KEEP // 2
            del self.events[:drop]
            self.first += drop
        self._notify()

    def close(self, error: StoreError | None = None) -> None:
        if not self.closed:
            self.closed = True
            self.error = error
            self._notify()

    def _notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


class _JoinedPump(Pump):
    """A ``Pump`` whose choice-0 text goes through a seam joiner first: a continuation
    that repeats the end of the delivered text is not delivered twice."""

    def __init__(
        self, stream: AsyncStream, encoder: RelayEncoder, *, max_buffer: int, joiner: OverlapJoiner
    ) -> None:
        super().__init__(stream, encoder, max_buffer=max_buffer)
        self._joiner = joiner

    def _events(self, batch: list[ChatEvent]) -> list[ChatEvent]:
        joiner = self._joiner
        out: list[ChatEvent] = []
        for event in batch:
            if type(event) is TextDelta and event.index == 0:
                text = joiner.feed(event.text)
                if text:
                    out.append(TextDelta(0, text))
            elif type(event) is Finish and event.index == 0:
                rest = joiner.close()
                if rest:
                    out.append(TextDelta(0, rest))
                out.append(event)
            else:
                out.append(event)
        return out


def _not_continuable(events: Sequence[StoredEvent]) -> str | None:
    """Why a stream cannot be continued by prefill, or None when it can."""
    for event in events:
        if event.name == "tool_call":
            return "a tool call in flight cannot be continued"
        if event.name in ("text", "reasoning") and json.loads(event.data).get("choice") != 0:
            return "streams of several choices are not continued"
    return None


def _error_event(seq: int, status: str, message: str, code: str | None, text: str) -> StoredEvent:
    """A terminal ``error`` event of the relay schema, for ends the encoder did not make."""
    data = {
        "status": status,
        "message": message,
        "code": code,
        "http_status": None,
        "partial_text_length": len(text),
        "text": text,
    }
    return StoredEvent(seq, "error", json.dumps(data, ensure_ascii=False, separators=(",", ":")))


def _joined_text(texts: list[str]) -> str:
    """Choice 0's text from the data of ``text`` events."""
    parts = (json.loads(data) for data in texts)
    return "".join(part["text"] for part in parts if part.get("choice") == 0)


def _store_error(exc: StoreError, seq: int, text: str) -> bytes:
    """The ``error`` event that ends a response whose store failed."""
    if isinstance(exc, StreamNotFound):
        event = _error_event(seq, "error", f"the stream expired: {exc}", "stream_expired", text)
    else:
        message = f"the stream store is unavailable: {exc}"
        event = _error_event(seq, "error", message, "store_unavailable", text)
    return sse_bytes([event])
