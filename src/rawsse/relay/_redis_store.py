"""``RedisStore``: resumable streams shared by relay instances through Redis (>= 6) or Valkey.

Keys of one stream (``{id}`` is a hash tag, so a cluster keeps them on one node)::

    <prefix>{id}:m   hash    request body, owner, state, last seq, cancel flag
    <prefix>{id}:e   stream  the events: entry id ``0-<seq>``, fields e (name), d (data),
                             t (present on the terminal event)
    <prefix>{id}:l   string  the producer lease: the holder, ``SET NX PX``
    <prefix>{id}:a   string  presence: set by each follower at least every ``block`` seconds

``cancel`` sets the stream's flag and publishes its id on ``<prefix>cancel``; one
subscription per store wakes the producers waiting in ``wait_cancelled``.

Every call but a follower's blocking read is one Lua script, and writes are
checked against the lease, so a producer that lost its lease cannot write.  The
scripts waiting at one moment go in one pipeline on one connection, bounded in
time as a whole (group commit: under load one round trip carries many streams'
appends, lease renewals and checks, and a thousand streams need a handful of
connections, not one each).
``XADD`` caps each stream near ``max_events`` (``MAXLEN ~``).  Live keys expire
``live_ttl`` after the last write or lease renewal; the terminal event re-arms
them all to ``ttl``.  Followers ``XREAD BLOCK`` from their position.

Redis down, restarting or slow: every call raises ``StoreUnavailable`` within
``timeout`` seconds (plus ``block`` for blocking reads); it never hangs.  The
shared pipeline counts its time in checks of its event loop: on a busy machine
a process can be descheduled (or collect garbage, or be late with a thousand
streams to serve) for seconds, which is not Redis failing, and must not turn
every stream unresumable.  The
``redis`` package's client is asyncio-only, so this store is too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import anyio

from .._errors import ConfigurationError
from ._store import Renewal, StoreBase, StoredEvent, StreamInfo, new_stream_id
from ._store_errors import LeaseLost, StoreUnavailable, StreamNotFound

__all__ = ["RedisStore"]

log = logging.getLogger("rawsse.relay")

# KEYS m e l; ARGV holder, final, live_ms, done_ms, maxlen, lease_ms, events: a JSON array
# of [seq, name, data] (one argument, not three per event: packing arguments costs the
# relay more than the JSON).  A lapsed lease nobody took is taken back: only another
# holder fences.
_WRITE = """
local meta = redis.call('HMGET', KEYS[1], 's', 'n')
if not meta[1] then return -2 end
if meta[1] ~= 'live' then return -3 end
local owner = redis.call('GET', KEYS[3])
if owner ~= ARGV[1] then
  if owner then return -1 end
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[6])
end
local last = tonumber(meta[2])
local final = ARGV[2] == '1'
local events = cjson.decode(ARGV[7])
local n = #events
for i = 1, n do
  local seq, name, data = events[i][1], events[i][2], events[i][3]
  if seq > last then
    if seq ~= last + 1 then return -4 end
    local id = string.format('0-%d', seq)
    if final and i == n then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], id, 'e', name, 'd', data, 't', '1')
    else
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], id, 'e', name, 'd', data)
    end
    last = seq
  end
end
redis.call('HSET', KEYS[1], 'n', last)
if final then
  redis.call('HSET', KEYS[1], 's', 'done')
  redis.call('DEL', KEYS[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return last
"""

# KEYS m l; ARGV holder, live_ms, lease_ms, request[, owner]
_CREATE = """
redis.call('HSET', KEYS[1], 'r', ARGV[4], 's', 'live', 'n', 0)
if ARGV[5] then redis.call('HSET', KEYS[1], 'o', ARGV[5]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
return 1
"""

# KEYS m l.  Reads go in the shared pipeline too: one connection, not one per caller.
_INFO = """
return {redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[2])}
"""

# KEYS m
_STATE = """
return redis.call('HMGET', KEYS[1], 's', 'n')
"""

# KEYS a
_EXISTS = """
return redis.call('EXISTS', KEYS[1])
"""

# KEYS m e l; ARGV holder, lease_ms, live_ms
_ACQUIRE = """
if redis.call('HGET', KEYS[1], 's') ~= 'live' then return 0 end
if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""

# KEYS m e l a; ARGV holder, lease_ms, live_ms.  A lapsed lease nobody took is taken back.
_RENEW = """
local owner = redis.call('GET', KEYS[3])
local held = redis.call('HGET', KEYS[1], 's') == 'live' and (owner == ARGV[1] or not owner)
if held then
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
local cancelled = redis.call('HGET', KEYS[1], 'x') == '1'
return {held and 1 or 0, cancelled and 1 or 0, redis.call('EXISTS', KEYS[4])}
"""

# KEYS l; ARGV holder
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

# KEYS m; ARGV channel, stream id
_CANCEL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'x', '1')
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
"""

_PIPELINES = 4
"""Pipelines in flight at once, each on its own connection: a call waits for a free one,
not behind a round trip in flight."""

_TICK = 0.1
"""Seconds between a waiting pipeline's checks of its time budget."""

_WRITE_ERRORS = {
    -1: (LeaseLost, "the lease is held by another producer"),
    -2: (StreamNotFound, "unknown or expired stream"),
    -3: (LeaseLost, "the stream has finished"),
}


_Arg = str | int | bytes
_Call = tuple[Any, list[str], list[_Arg], asyncio.Future[Any]]
"""A queued script call: the script, its keys and arguments, and where its reply goes."""


class RedisStore(StoreBase):
    """Resumable streams in Redis Streams, shared by every relay instance using the same URL."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        ttl: float = 600.0,
        live_ttl: float = 3600.0,
        lease_ttl: float = 5.0,
        max_events: int = 100_000,
        timeout: float = 2.0,
        block: float = 1.0,
        key_prefix: str = "rawsse:",
        max_connections: int = 10_000,
    ) -> None:
        """Connect lazily to ``url`` (``redis://HOST:PORT/DB``, ``rediss://``, ``unix://``).

        ``timeout`` bounds every round trip (and connecting); a change queued
        behind a round trip in flight waits for that one first, and blocking
        reads wait at most ``block`` seconds per round trip on top of it.  Each
        follower reading the store holds one of ``max_connections`` while it
        waits; all the changes share one at a time.
        """
        try:
            from redis.asyncio import from_url
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import ConnectionError as RedisConnectionError
            from redis.exceptions import NoScriptError, RedisError
        except ImportError as exc:  # pragma: no cover (the extra is installed in dev)
            raise ConfigurationError(
                "RedisStore needs the redis package: pip install 'rawsse[redis]'"
            ) from exc
        super().__init__(ttl=ttl, live_ttl=live_ttl, lease_ttl=lease_ttl)
        self.max_events = max_events
        self.timeout = timeout
        self.block = block
        self.presence = 2 * block + timeout
        self._prefix = key_prefix
        self._channel = key_prefix + "cancel"
        self._waiters: dict[str, anyio.Event] = {}
        self._listener: asyncio.Task[None] | None = None
        self._pending: list[_Call] = []
        self._flushers: set[asyncio.Task[None]] = set()
        self._in_flight: dict[anyio.CancelScope, int] = {}
        """Each pipeline in flight and the watchdog's checks of it so far."""
        self._watchdog: asyncio.Task[None] | None = None
        self._errors: tuple[type[Exception], ...] = (RedisError, OSError)
        self._no_script = NoScriptError
        # One immediate retry on a dropped connection (a pooled one a restart closed).  No
        # socket timeout: every call is bounded here (``_guard``, ``_round_trip``).
        options: dict[str, Any] = {
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        }
        # Typed loosely on purpose: the package's reply types differ between its versions.
        self._client: Any = from_url(url, max_connections=max_connections, **options)
        self._create = self._client.register_script(_CREATE)
        self._info = self._client.register_script(_INFO)
        self._state = self._client.register_script(_STATE)
        self._exists = self._client.register_script(_EXISTS)
        self._write = self._client.register_script(_WRITE)
        self._acquire = self._client.register_script(_ACQUIRE)
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)
        self._cancel = self._client.register_script(_CANCEL)

    async def create(self, request: bytes, *, owner: str | None, holder: str) -> str:
        """Start a stream whose lease ``holder`` holds; return its new id."""
        stream_id = new_stream_id()
        m, _, lease, _ = self._keys(stream_id)
        args: list[_Arg] = [holder, _ms(self.live_ttl), _ms(self.lease_ttl), request]
        if owner is not None:
            args.append(owner)
        await self._run(self._create, stream_id, [m, lease], args)
        return stream_id

    async def info(self, stream_id: str) -> StreamInfo:
        """The stream's metadata; ``StreamNotFound`` when unknown or expired."""
        m, _, lease, _ = self._keys(stream_id)
        flat, holder = await self._run(self._info, stream_id, [m, lease], [])
        if not flat:
            raise StreamNotFound("unknown or expired stream", stream_id=stream_id)
        meta = dict(zip(flat[::2], flat[1::2], strict=True))
        owner = meta.get(b"o")
        return StreamInfo(
            stream_id=stream_id,
            owner=None if owner is None else owner.decode(),
            request=meta[b"r"],
            last_seq=int(meta[b"n"]),
            finished=meta[b"s"] != b"live",
            cancelled=meta.get(b"x") == b"1",
            holder=None if holder is None else holder.decode(),
        )

    async def append(self, stream_id: str, holder: str, events: Sequence[StoredEvent]) -> None:
        """Store events if ``holder`` holds the lease; else ``LeaseLost``."""
        await self._store(stream_id, holder, events, final=False)

    async def finish(self, stream_id: str, holder: str, events: Sequence[StoredEvent]) -> None:
        """``append`` whose last event is terminal; frees the lease and starts the TTL."""
        await self._store(stream_id, holder, events, final=True)

    async def read(self, stream_id: str, after: int = 0) -> list[StoredEvent]:
        """The events stored after position ``after``, now."""
        m, e, _, _ = self._keys(stream_id)
        with self._guard(stream_id):
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.exists(m)
                pipe.xrange(e, f"0-{after + 1}", "+")
                exists, entries = await pipe.execute()
        if not exists:
            raise StreamNotFound("unknown or expired stream", stream_id=stream_id)
        return list(_decode(stream_id, entries, after))

    async def follow(self, stream_id: str, after: int = 0) -> AsyncGenerator[StoredEvent, None]:
        """Every event after ``after``, then live ones, ending after the terminal event."""
        _, e, _, a = self._keys(stream_id)
        if await self._ended_by(stream_id, after, "unknown or expired stream"):
            return
        position = after
        block_ms = _ms(self.block)
        presence_ms = _ms(self.presence)
        present_until = 0.0
        while True:
            now = anyio.current_time()
            with self._guard(stream_id, wait=self.block):
                async with self._client.pipeline(transaction=False) as pipe:
                    if now + self.block >= present_until:
                        # Refreshed well before it lapses, in the same round trip as the read.
                        pipe.set(a, b"1", px=presence_ms)
                        present_until = now + self.presence
                    pipe.xread({e: f"0-{position}"}, count=1000, block=block_ms)
                    reply = (await pipe.execute())[-1]
            if not reply:
                # Nothing new for a while: the stream may have expired (or Redis restarted),
                # or finished at or before a position ahead of what was stored.
                if await self._ended_by(stream_id, position, "stream expired while followed"):
                    return
                continue
            entries = reply[0][1]
            for event, terminal in _decode_terminal(stream_id, entries, position):
                yield event
                position = event.seq
                if terminal:
                    return

    async def _ended_by(self, stream_id: str, position: int, gone: str) -> bool:
        """Whether the stream has finished at or before ``position``; ``StreamNotFound``
        (saying ``gone``) when it no longer exists."""
        m, _, _, _ = self._keys(stream_id)
        state, last = await self._run(self._state, stream_id, [m], [])
        if state is None:
            raise StreamNotFound(gone, stream_id=stream_id)
        return bool(state != b"live" and position >= int(last))

    async def followed(self, stream_id: str) -> bool:
        """Whether a follower was reading within the last ``presence`` seconds."""
        _, _, _, a = self._keys(stream_id)
        return bool(await self._run(self._exists, stream_id, [a], []))

    async def acquire_lease(self, stream_id: str, holder: str) -> bool:
        """Take the lease if it is free or expired (``SET NX PX``)."""
        keys = list(self._keys(stream_id)[:3])
        return bool(await self._run(self._acquire, stream_id, keys, self._lease_args(holder)))

    async def renew_lease(self, stream_id: str, holder: str) -> Renewal:
        """Extend ``holder``'s lease if it holds it; and the stream's flags (one script)."""
        keys = list(self._keys(stream_id))
        reply = await self._run(self._renew, stream_id, keys, self._lease_args(holder))
        held, cancelled, followed = reply
        return Renewal(held=held == 1, cancelled=cancelled == 1, followed=followed == 1)

    async def release_lease(self, stream_id: str, holder: str) -> None:
        """Give the lease up now (only if ``holder`` holds it)."""
        _, _, lease, _ = self._keys(stream_id)
        await self._run(self._release, stream_id, [lease], [holder])

    async def cancel(self, stream_id: str) -> None:
        """Ask the producer to stop: sets the flag and publishes the id."""
        m, _, _, _ = self._keys(stream_id)
        found = await self._run(self._cancel, stream_id, [m], [self._channel, stream_id])
        if not found:
            raise StreamNotFound("unknown or expired stream", stream_id=stream_id)

    async def wait_cancelled(self, stream_id: str, within: float) -> bool:
        """Wait up to ``within`` seconds for a ``cancel`` published for the stream."""
        self._listen()
        event = self._waiters.get(stream_id)
        if event is None:
            event = self._waiters[stream_id] = anyio.Event()
        try:
            with anyio.move_on_after(within):
                await event.wait()
        finally:
            if self._waiters.get(stream_id) is event:
                del self._waiters[stream_id]
        return event.is_set()

    def _listen(self) -> None:
        """Start the one subscription to cancels, or again after it failed."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._subscription())

    async def _subscription(self) -> None:
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            with self._guard(None):
                await pubsub.subscribe(self._channel)
            while True:
                message = await pubsub.get_message(timeout=self.block)
                if message is not None and message["type"] == "message":
                    event = self._waiters.get(message["data"].decode())
                    if event is not None:
                        event.set()
        except Exception as exc:  # waiters time out; renewals still see the flag
            log.warning("RedisStore: the subscription to cancels failed: %s", exc)
        finally:
            with anyio.CancelScope(shield=True):
                await pubsub.aclose()

    async def aclose(self) -> None:
        """Stop the subscription and close the connections."""
        for task in (self._listener, self._watchdog, *self._flushers):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._client.aclose()

    async def ping(self) -> None:
        """Check that Redis answers (``StoreUnavailable`` when not)."""
        with self._guard(None):
            await self._client.ping()

    def _keys(self, stream_id: str) -> tuple[str, str, str, str]:
        base = f"{self._prefix}{{{stream_id}}}:"
        return base + "m", base + "e", base + "l", base + "a"

    def _lease_args(self, holder: str) -> list[_Arg]:
        return [holder, _ms(self.lease_ttl), _ms(self.live_ttl)]

    async def _store(
        self, stream_id: str, holder: str, events: Sequence[StoredEvent], *, final: bool
    ) -> None:
        args: list[_Arg] = [
            holder,
            "1" if final else "0",
            _ms(self.live_ttl),
            _ms(self.ttl),
            self.max_events,
            _ms(self.lease_ttl),
            json.dumps([(e.seq, e.name, e.data) for e in events], ensure_ascii=False),
        ]
        result = await self._run(self._write, stream_id, list(self._keys(stream_id)[:3]), args)
        if result == -4:
            raise ValueError(f"events {[e.seq for e in events]} are not consecutive")
        if result in _WRITE_ERRORS:
            error, message = _WRITE_ERRORS[result]
            raise error(message, stream_id=stream_id)

    async def _run(self, script: Any, stream_id: str, keys: list[str], args: list[_Arg]) -> Any:
        """Queue one script for the next pipeline and wait for its reply.

        No cancel scope of its own: the round trip that carries it is bounded
        by ``timeout`` (``_flush``), which settles every call it carries.
        """
        loop = _running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, keys, args, future))
        # A flusher that has returned is done at once; a done callback would run only on
        # the next turn, and a call counting it as busy then would wait for nobody.
        self._flushers = {task for task in self._flushers if not task.done()}
        if len(self._flushers) < _PIPELINES:
            self._flushers.add(loop.create_task(self._flush()))
        try:
            return await future
        except self._errors as exc:
            raise _unavailable(exc, stream_id) from exc

    async def _flush(self) -> None:
        """Send the scripts waiting, all in one pipeline, until none wait (group commit):
        under load one round trip carries the changes of many streams."""
        batch: list[_Call] = []
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                self._operations += 1
                try:
                    results = await self._round_trip(batch)
                except Exception as exc:
                    results = [exc] * len(batch)
                for (_, _, _, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue  # its caller gave up
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
                batch = []
        finally:
            # Stopped mid-flight (``aclose``): nobody waits for a reply that will not come.
            for _, _, _, future in batch + self._pending:
                if not future.done():
                    future.set_exception(ConnectionError("the store was closed"))

    async def _round_trip(self, batch: list[_Call]) -> list[Any]:
        """The pipeline's replies; ``TimeoutError`` when the watchdog stopped it."""
        with anyio.CancelScope() as scope:
            self._in_flight[scope] = 0
            self._watch()
            try:
                return await self._pipeline(batch)
            finally:
                del self._in_flight[scope]
        raise TimeoutError  # the connection was closed, not reused

    def _watch(self) -> None:
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.get_running_loop().create_task(self._watch_pipelines())

    async def _watch_pipelines(self) -> None:
        """Stop each pipeline in flight after ``timeout / _TICK`` checks at least ``_TICK``
        seconds apart: ``timeout`` seconds on an idle machine, longer while this process
        is descheduled or its event loop is late (a check comes late, and Redis's reply
        may be waiting unread).  One task for all pipelines, no cancel scope per call."""
        limit = self.timeout / _TICK
        while self._in_flight:
            await anyio.sleep(_TICK)
            for scope, checks in list(self._in_flight.items()):
                self._in_flight[scope] = checks + 1
                if checks + 1 >= limit:
                    scope.cancel()

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        results = await self._evalsha(batch)
        missing = [i for i, result in enumerate(results) if isinstance(result, self._no_script)]
        if missing:
            # A fresh or restarted Redis has no scripts: load each one once, then run
            # what they refused again in one more round trip (not one each).
            scripts = {batch[i][0].sha: batch[i][0] for i in missing}
            async with self._client.pipeline(transaction=False) as pipe:
                for script in scripts.values():
                    pipe.script_load(script.script)
                await pipe.execute()
            again = await self._evalsha([batch[i] for i in missing])
            for index, result in zip(missing, again, strict=True):
                results[index] = result
        return results

    async def _evalsha(self, batch: list[_Call]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for script, keys, args, _ in batch:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    @contextmanager
    def _guard(self, stream_id: str | None, wait: float = 0.0) -> Iterator[None]:
        """Count one round trip, bound it in time, and translate the client's errors."""
        _running_loop()
        self._operations += 1
        try:
            with anyio.fail_after(self.timeout + wait):
                yield
        except self._errors as exc:
            raise _unavailable(exc, stream_id) from exc


def _running_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise ConfigurationError("RedisStore runs on asyncio only") from None


def _unavailable(exc: BaseException, stream_id: str | None) -> StoreUnavailable:
    if isinstance(exc, TimeoutError):
        return StoreUnavailable("Redis did not answer in time", stream_id=stream_id)
    message = f"Redis is unavailable: {type(exc).__name__}: {exc}"
    return StoreUnavailable(message, stream_id=stream_id)


def _ms(seconds: float) -> int:
    return max(int(seconds * 1000), 1)


def _decode_terminal(
    stream_id: str, entries: list[Any], position: int
) -> Iterator[tuple[StoredEvent, bool]]:
    """``XRANGE``/``XREAD`` entries after ``position`` as events; a gap means trimmed."""
    expected = position + 1
    for entry_id, fields in entries:
        seq = int(entry_id.split(b"-", 1)[1])
        if seq != expected:
            raise StreamNotFound(
                f"events after {position} are no longer stored (the stream was capped)",
                stream_id=stream_id,
            )
        expected += 1
        event = StoredEvent(seq, fields[b"e"].decode(), fields[b"d"].decode())
        yield event, b"t" in fields


def _decode(stream_id: str, entries: list[Any], position: int) -> Iterator[StoredEvent]:
    for event, _ in _decode_terminal(stream_id, entries, position):
        yield event
