"""The I/O between an upstream ``AsyncStream`` and a ``RelayEncoder``: three parts.

* The reader task (``Pump.read``) opens the stream (connection, retries and HTTP
  errors stay ``AsyncStream``'s) and then only moves body bytes into a queue.
* The writer (``Pump.next_bytes``, in the task that sends) takes everything
  queued at once, decodes it with the stream's own ``StreamCore`` (the sans-I/O
  state of ``AsyncStream``, so results, errors, ``partial`` and timeouts are the
  client's), encodes and returns it: what arrived together leaves as one write.
  This is where the relay saves its CPU: httpx hands out one HTTP chunk at a
  time, and a burst of chunks costs one decode, one encode and one send.
* The timer (``Pump.time``) wakes the writer at the next deadline (a
  heartbeat, a coalescing flush, a client timeout) without a cancel scope per
  wait: the writer tells it a new deadline only when it is earlier.  It also
  reports a write blocked for ``write_timeout`` (``on_stall``).  On asyncio it
  is one loop timer (``call_at``), not a task; on trio, a task.

The tasks wake each other with ``_Waiter``: the backend's own future (asyncio)
or event (trio), a tenth of an ``anyio.Event`` in memory and in time; with
thousands of streams open, what each one holds is the relay's memory.

Given ``send`` (``RelayApp`` does; ``relay_stream`` cannot, it yields), the
reader sends a chunk that came fresh from the network itself, saving the
writer's wakeup: one task switch per event, as a plain proxy has.  Chunks that
were already buffered behind it still go through the writer and leave together.

The reader is never cancelled to make a heartbeat (cancelling an HTTP read
closes the connection); only stopping the relay cancels it.

``[DONE]`` ends the relayed stream at once (the terminal ``done`` event leaves
with it), but the reader reads on, as the clients do, for ``DONE_GRACE``: a
server's prompt close ends the body (its connection is then kept for the next
request); one that stays silent is closed at the grace.  What it sends then is
dropped, never decoded.

Buffering is bounded: when the writer stops taking bytes (a client that stops
reading), at most ``max_buffer`` bytes of upstream body wait in the queue; then
the reader stops reading, and TCP flow control holds the rest upstream.

A stream with a resume policy (``Resume``) is read another way: a continuation
opens a new request mid-stream, which is ``AsyncStream``'s to do.  The reader
then takes whole decoded batches from the stream itself (``shell_next``:
reconnecting, continuing and its deadlines are the client's, and a seam arrives
as a ``Continued`` event) and queues events; the writer only encodes them.

The pump sees its stream through ``Upstream`` (``AsyncStream``'s ``shell_*``
members): the relay is a second shell around the same ``StreamCore``.
"""

from __future__ import annotations

import types
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any, Protocol, TypeVar, cast

import anyio

from .._base_client import DONE_GRACE, GiveUp, StreamCore
from .._chat_events import ChatEvent
from ._encoder import RelayEncoder

__all__ = ["DEFAULT_MAX_BUFFER", "Pump", "Upstream", "spawn"]

DEFAULT_MAX_BUFFER = 256 * 1024
"""Bytes of upstream body read and not yet relayed, per stream, before reading pauses."""

_OPENING, _BODY, _EOF, _FAILED, _CANCELLED = range(5)

T = TypeVar("T")


class Upstream(Protocol):
    """What the pump needs of its stream; ``AsyncStream`` is one (see its ``shell_*``)."""

    @property
    def shell_core(self) -> StreamCore: ...

    async def shell_open(self) -> AsyncIterator[bytes] | None: ...

    async def shell_next(self) -> list[ChatEvent] | None: ...

    async def shell_release(self) -> None: ...


def _backend_loop() -> Any:
    """The running asyncio loop, or None under trio."""
    import asyncio

    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _Waiter:
    """Wakes one waiting task, on the backend's own future (asyncio) or event (trio).

    A ``wake`` while nobody waits is kept: the next ``wait`` returns at once
    (callers re-check their state after every wakeup).  ``wait(deadline)`` also
    returns at ``deadline`` (on the backend's clock) without a cancel scope.
    """

    __slots__ = ("_loop", "_pending", "_waiter")

    def __init__(self, loop: Any) -> None:
        self._loop = loop  # None: trio
        self._pending = False
        self._waiter: Any = None

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is None:
            self._pending = True
        elif self._loop is None:
            waiter.set()
        elif not waiter.done():
            waiter.set_result(None)

    async def wait(self, deadline: float | None = None) -> None:
        if self._pending:
            self._pending = False
            return
        if self._loop is None:
            import trio

            event = self._waiter = trio.Event()
            try:
                if deadline is None:
                    await event.wait()
                else:
                    with trio.move_on_at(deadline):
                        await event.wait()
            finally:
                self._waiter = None
            return
        future = self._waiter = self._loop.create_future()
        timer = None if deadline is None else self._loop.call_at(deadline, _resolve, future)
        try:
            await future
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()


def _resolve(future: Any) -> None:
    if not future.done():
        future.set_result(None)


class Pump:
    """One relayed stream: ``read`` and ``time`` run as tasks; the sender calls ``next_bytes``."""

    __slots__ = (
        "_blocked",
        "_by_events",
        "_chunks",
        "_core",
        "_deadline",
        "_draining",
        "_error",
        "_handle",
        "_loop",
        "_max_buffer",
        "_max_events",
        "_now",
        "_on_stall",
        "_queued",
        "_read_scope",
        "_reader_sending",
        "_rearm",
        "_room",
        "_send",
        "_send_deadline",
        "_size",
        "_state",
        "_stopped",
        "_target",
        "_timer_stopped",
        "_waiter",
        "_write_timeout",
        "_writing",
        "encoder",
        "stream",
    )

    def __init__(
        self,
        stream: Upstream,
        encoder: RelayEncoder,
        *,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        write_timeout: float | None = None,
        on_stall: Callable[[], object] | None = None,
        send: Callable[[bytes], Awaitable[object]] | None = None,
    ) -> None:
        self.stream = stream
        self.encoder = encoder
        self._core = stream.shell_core
        self._max_buffer = max_buffer
        self._write_timeout = write_timeout
        self._on_stall = on_stall
        self._send_deadline: float | None = None
        self._send = send
        # The caller is writing what ``next_bytes`` returned (its first write, the
        # opening comment, lasts until its first call).
        self._writing = True
        self._reader_sending = False  # the reader is writing what it just read
        self._blocked = False  # the writer waits for the reader's write to end
        self._chunks: list[bytes] = []
        self._size = 0
        # A resume policy continues a broken stream in a new request: the stream reads
        # and decodes itself, and the reader queues its events (see the module docstring).
        self._by_events = self._core.resume is not None
        self._queued: list[ChatEvent] = []
        self._max_events = max(1, max_buffer // 16)  # an event's bytes, at the least
        self._state = _OPENING
        self._error: BaseException | None = None
        self._draining = False  # [DONE] ended the stream: the reader reads on until the grace
        # The writer's wakeup is the hot path (once per upstream read): the backend's
        # own future or event and clock, chosen once, instead of anyio's per call.
        loop = self._loop = _backend_loop()
        if loop is not None:
            self._now: Callable[[], float] = loop.time
        else:
            import trio

            self._now = trio.current_time
        self._waiter = _Waiter(loop)  # the writer's
        self._room = _Waiter(loop)  # the reader's, while the buffer is full
        self._rearm = _Waiter(loop)  # the timer task's (trio)
        self._stopped: _Waiter | None = _Waiter(loop)  # None once the reader has ended
        self._deadline: float | None = None  # the writer's next deadline, for the timer
        self._target: float | None = None  # what the timer sleeps until (None: idle)
        self._timer_stopped = False
        self._handle: Any = None  # asyncio: the timer's loop timer
        self._read_scope = anyio.CancelScope()

    def stop(self) -> None:
        """Cancel the reader (it releases the connection on its way out) and end the timer.

        After ``[DONE]`` the reader is cancelled at the grace instead (``DONE_GRACE``
        after it), if the body has not ended by then."""
        done_at = self._core.done_at
        if self._draining and done_at is not None:
            self._read_scope.deadline = min(self._read_scope.deadline, done_at + DONE_GRACE)
        else:
            self._read_scope.cancel()
        self._stop_timer()

    def _stop_timer(self) -> None:
        self._timer_stopped = True
        if self._loop is None:
            self._rearm.wake()
        elif self._handle is not None:
            self._handle.cancel()
            self._handle = None

    async def wait_stopped(self) -> None:
        """Return when the reader has ended and the upstream connection is released."""
        stopped = self._stopped
        while stopped is not None:
            await stopped.wait()
            stopped = self._stopped

    # -- the reader task ---------------------------------------------------------------

    async def read(self) -> None:
        """Open the stream, then queue body bytes until its end, an error or ``stop()``."""
        stream = self.stream
        try:
            with self._read_scope:
                try:
                    raw = await stream.shell_open()
                except Exception as exc:  # the stream failed before its body
                    self._end(_FAILED, exc)
                    return
                self._state = _BODY
                if self._by_events:
                    await self._read_events()
                elif raw is None:  # the stream already ended (nothing to read)
                    self._end(_EOF, None)
                    return
                elif await self._read_body(raw):
                    return
            if self._state in (_OPENING, _BODY):
                self._end(_CANCELLED, None)
        finally:
            with anyio.CancelScope(shield=True):
                await stream.shell_release()
            self._waiter.wake()
            stopped, self._stopped = self._stopped, None
            if stopped is not None:
                stopped.wake()

    async def _read_body(self, raw: Any) -> bool:
        """Queue the raw body's chunks until its end or an error; True when the reader
        itself sent the terminal event.

        Given ``send``, on asyncio, a chunk fresh from the network is relayed and sent
        here, in the reader task: one task switch less per read than handing it to
        the writer (and written out inline: no coroutine of its own per read)."""
        chunks = self._chunks
        send = self._send
        loop = self._loop if send is not None else None
        anext = raw.__anext__
        suspended = [False]  # stays False without ``loop``: every chunk goes to the writer
        try:
            while True:
                if loop is None:
                    chunk = await anext()
                else:
                    # Did this read wait for the network, or was the chunk buffered?
                    suspended[0] = False
                    chunk = await _noting_suspension(anext(), suspended)
                if self._draining:  # after [DONE]: read on, never decoded
                    continue
                chunks.append(chunk)
                self._size += len(chunk)
                if not suspended[0] or self._writing:
                    # Buffered behind an earlier chunk (or the caller is still writing):
                    # the writer runs when this task next waits, and takes all together.
                    self._waiter.wake()
                else:
                    assert send is not None
                    self._reader_sending = True
                    try:
                        now = self._now()
                        out = self._take(now)
                        if out:
                            self._sending(now)
                            await send(out)
                            self._send_deadline = None
                    finally:
                        self._reader_sending = False
                        if self._blocked:
                            self._blocked = False
                            self._waiter.wake()
                    if self.encoder.closed:
                        self.stop()
                        self._waiter.wake()  # the writer returns None
                        if not self._draining:
                            return True
                while self._size >= self._max_buffer:
                    await self._room.wait()
        except StopAsyncIteration:
            self._end(_EOF, None)
        except Exception as exc:  # translated by the writer, as the client would
            # (after [DONE] a broken connection is only the body's end: already relayed)
            self._end(_FAILED, exc)
        return False

    async def _read_events(self) -> None:
        """Queue the stream's own decoded events (continuations included) until its end."""
        stream = self.stream
        try:
            while True:
                batch = await stream.shell_next()
                if batch is None:
                    self._end(_EOF, None)
                    return
                if not batch:
                    continue
                self._queued += batch  # the writer swaps the list when it takes it
                self._size += len(batch)
                self._waiter.wake()
                while self._size >= self._max_events:
                    await self._room.wait()
        except Exception as exc:  # the client's final error: decided, with its partial
            self._end(_FAILED, exc)

    def _end(self, state: int, error: BaseException | None) -> None:
        self._state = state
        self._error = error
        self._waiter.wake()

    # -- the timer ---------------------------------------------------------------------

    async def time(self) -> None:
        """Wake the writer when its deadline comes, and report a stalled write.

        On asyncio this arms a loop timer and returns at once (a task per stream
        is memory, with thousands of streams); on trio it runs until ``stop()``.
        """
        if self._loop is not None:
            self._arm()
            return
        while not self._timer_stopped:
            target = self._target = self._next_target()
            await self._rearm.wait(target)
            if not self._timer_stopped and target is not None:
                self._due()

    def _next_target(self) -> float | None:
        target = self._deadline
        send = self._send_deadline
        if send is not None and (target is None or send < target):
            target = send
        return target

    def _due(self) -> None:
        """Act on the deadlines that have passed."""
        now = self._now()
        send = self._send_deadline
        if send is not None and now >= send and self._on_stall is not None:
            self._timer_stopped = True
            self._on_stall()  # the client stopped reading: the owner drops it
            return
        deadline = self._deadline
        if deadline is not None and now >= deadline:
            self._deadline = None
            self._waiter.wake()

    def _arm(self) -> None:
        """asyncio: (re)schedule the loop timer at the next deadline."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        target = self._target = None if self._timer_stopped else self._next_target()
        if target is not None:
            self._handle = self._loop.call_at(target, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if not self._timer_stopped:
            self._due()
            self._arm()

    def _rearm_timer(self) -> None:
        if self._loop is None:
            self._rearm.wake()
        else:
            self._arm()

    def _wake_at(self, deadline: float | None) -> None:
        self._deadline = deadline
        target = self._target
        if deadline is not None and (target is None or deadline < target):
            self._rearm_timer()

    def _sending(self, now: float) -> None:
        """The caller is about to send: a write still blocked at the timeout is a stall."""
        if self._write_timeout is None:
            return
        deadline = self._send_deadline = now + self._write_timeout
        target = self._target
        if target is None or deadline < target:
            self._rearm_timer()

    # -- the writer ------------------------------------------------------------------

    async def next_bytes(self) -> bytes | None:
        """The next bytes to send, or None once the terminal event was returned."""
        self._writing = False  # the caller's previous write completed
        if not self._reader_sending:
            self._send_deadline = None
        out = await self._next()
        if out is not None:
            self._writing = True
            self._sending(self._now())
        return out

    async def _next(self) -> bytes | None:
        encoder = self.encoder
        core = self._core
        while True:
            if encoder.closed:
                return None
            if self._reader_sending:  # the reader is sending what it just read: wait for it
                self._blocked = True
                await self._waiter.wait()
                continue
            if self._chunks or self._queued:
                out = self._take(self._now())
                if encoder.closed:
                    self.stop()
                if out:
                    return out
                continue
            state = self._state
            now = self._now()
            if state >= _EOF:
                return self._finish(state, now)
            # Under a resume policy the stream keeps its own deadlines (a timeout may
            # be continued), so the writer leaves them to it.
            watch = state == _BODY and not self._by_events
            if watch:
                expired = core.clocks.expired(now)
                if expired is not None:
                    error = core.timeout_error(now)
                    core.fail(error, now)
                    self.stop()
                    return encoder.fail(error, now)
            out = encoder.poll(now)
            if out:
                return out
            deadline = encoder.deadline()
            if watch:
                clock = core.clocks.deadline()
                if clock is not None and (deadline is None or clock < deadline):
                    deadline = clock
            self._wake_at(deadline)
            await self._waiter.wait()

    def _take(self, now: float) -> bytes:
        """Relay every queued chunk (or event) at once."""
        if self._by_events:
            events = self._queued
            self._queued = []
            if self._size >= self._max_events:  # the reader waits for room
                self._room.wake()
            self._size = 0
            events = self._events(events)
            out = self.encoder.feed_many(events, now) if events else b""
            return out or self.encoder.poll(now)
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        if self._size >= self._max_buffer:  # the reader waits for room
            self._room.wake()
        self._size = 0
        self._core.clocks.read_start = now
        return self._relay_body(data, now)

    def _relay_body(self, data: bytes, now: float) -> bytes:
        core = self._core
        encoder = self.encoder
        if core.finished:  # bytes after [DONE]: the stream is over
            return b""
        events = core.feed(data, now)
        while core.backlog and core.pending is None and not core.finished:
            events += core.feed(b"", now)  # a compressed body, decoded piece by piece
        if core.done_at is not None and core.pending is None and not self._by_events:
            # [DONE]: the stream is complete now; the reader reads on until the grace.
            events += core.end_of_body(now)
            self._draining = core.pending is None
        if events:
            events = self._events(events)
        out = encoder.feed_many(events, now) if events else b""
        if core.pending is not None:
            return out + encoder.fail(self._give_up(core.take_pending(), now), now)
        if core.finished:
            return out + encoder.close(core.result, now)
        # Bytes just written leave no heartbeat due, and ``feed_many`` flushed what
        # coalescing had due: ``poll`` only matters when nothing was written.
        return out or encoder.poll(now)

    def _finish(self, state: int, now: float) -> bytes:
        core = self._core
        encoder = self.encoder
        self.stop()  # the reader has ended; the timer is not needed any more
        if state == _EOF:
            if core.finished:  # [DONE] came before the end; already closed
                return encoder.close(core.result, now)
            events = core.end_of_body(now)
            if events:
                events = self._events(events)
            out = encoder.feed_many(events, now) if events else b""
            if core.pending is not None:
                return out + encoder.fail(self._give_up(core.take_pending(), now), now)
            return out + encoder.close(core.result, now)
        if state == _FAILED:
            error = self._error
            assert error is not None
            if not core.finished:  # failed in the body: the client's rules decide
                error = self._give_up(error, now)
            return encoder.fail(error, now)
        core.cancel(now)
        return encoder.cancel(now, partial=core.result)

    def _events(self, events: list[ChatEvent]) -> list[ChatEvent]:
        """The decoded events as relayed (a subclass may rewrite them)."""
        return events

    def _give_up(self, error: BaseException, now: float) -> BaseException:
        """The error that ends the stream, translated and with its ``partial``, by the
        client's own decision.  Without a resume policy the relay does not reconnect
        mid-body: a retry the client would make ends the relayed stream instead (with
        one, the stream's own reading continues it: ``_read_events``)."""
        core = self._core
        decision = core.decide(error, now)
        if isinstance(decision, GiveUp):
            return decision.error
        core.fail(error, now)
        return error


@types.coroutine
def _noting_suspension(awaitable: Awaitable[T], suspended: list[bool]) -> Generator[Any, Any, T]:
    """``await awaitable``, setting ``suspended[0]`` if it suspends the task.

    The delegation of ``yield from``, written out (PEP 380) to see the first
    suspension: no callback is scheduled per read to learn it (a callback costs
    the loop a turn, and an event loop turn per event is CPU).
    """
    inner = awaitable.__await__()
    try:
        yielded = inner.send(None)
    except StopIteration as stop:
        return cast(T, stop.value)
    suspended[0] = True
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:  # noqa: PERF203 (a `try` costs nothing until it catches)
            inner.close()
            raise
        except BaseException as exc:
            try:
                yielded = inner.throw(exc)
            except StopIteration as stop:
                return cast(T, stop.value)
        else:
            if sent is None:  # asyncio resumes with None: ``yield from`` delegates the rest, in C
                return (yield from inner)
            try:
                yielded = inner.send(sent)
            except StopIteration as stop:
                return cast(T, stop.value)


_tasks: set[Any] = set()  # strong references: asyncio keeps only weak ones to its tasks


def spawn(function: Any) -> Callable[[], object]:
    """Run ``await function()`` in a task that belongs to no task group; returns a
    function that cancels the task.

    ``relay_stream`` is an async iterator that a framework may abandon between two
    items; a task group held across ``yield`` would then be exited in another task.
    The pump's tasks therefore live outside, and the iterator's ``finally`` stops
    them and waits for the reader (``Pump.stop``, ``Pump.wait_stopped``).  ``function``
    must not raise (the pump reports every error as the terminal event).
    """
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: trio, anyio's other backend
        import trio

        scope = trio.CancelScope()

        async def run() -> None:
            with scope:
                await function()

        trio.lowlevel.spawn_system_task(run)
        return scope.cancel
    task = loop.create_task(function())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task.cancel
