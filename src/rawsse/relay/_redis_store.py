"""``RedisStore``: resumable streams shared by relay instances through Redis (>= 6) or Valkey.

Keys of one stream (``{id}`` is a hash tag, so a cluster keeps them on one node)::

    <prefix>{id}:m   hash    request body, owner, state, last seq, cancel flag
    <prefix>{id}:e   stream  the events: entry id ``0-<seq>``, fields e (name), d (data),
                             t (present on the terminal event)
    <prefix>{id}:l   string  the producer lease: the holder, ``SET NX PX``
    <prefix>{id}:a   string  presence: set by each follower at least every ``block`` seconds

``cancel`` sets the stream's flag and publishes its id on ``<prefix>cancel``; one
subscription per store wakes the producers waiting in ``wait_cancelled``.

Every write is one Lua script checked against the lease, so a producer that
lost its lease cannot write; the writes waiting at one moment go in one pipeline
(group commit: under load one round trip carries many streams' appends).
``XADD`` caps each stream near ``max_events`` (``MAXLEN ~``).  Live keys expire
``live_ttl`` after the last write or lease renewal; the terminal event re-arms
them all to ``ttl``.  Followers ``XREAD BLOCK`` from their position.

Redis down, restarting or slow: every call raises ``StoreUnavailable`` within
``timeout`` seconds (plus ``block`` for blocking reads); it never hangs.  The
``redis`` package's client is asyncio-only, so this store is too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import anyio

from .._errors import ConfigurationError
from ._store import (
    LeaseLost,
    Renewal,
    StoredEvent,
    StoreUnavailable,
    StreamInfo,
    StreamNotFound,
    new_stream_id,
)

__all__ = ["RedisStore"]

log = logging.getLogger("rawsse.relay")

# KEYS m e l; ARGV holder, final, live_ms, done_ms, maxlen, lease_ms, then seq name data
# per event.  A lapsed lease nobody took is taken back: only another holder fences.
_WRITE = """
local state = redis.call('HGET', KEYS[1], 's')
if not state then return -2 end
if state ~= 'live' then return -3 end
local owner = redis.call('GET', KEYS[3])
if owner ~= ARGV[1] then
  if owner then return -1 end
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[6])
end
local last = tonumber(redis.call('HGET', KEYS[1], 'n'))
local final = ARGV[2] == '1'
local n = #ARGV
for i = 7, n, 3 do
  local seq = tonumber(ARGV[i])
  if seq > last then
    if seq ~= last + 1 then return -4 end
    if final and i + 2 == n then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '0-' .. seq,
                 'e', ARGV[i + 1], 'd', ARGV[i + 2], 't', '1')
    else
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '0-' .. seq,
                 'e', ARGV[i + 1], 'd', ARGV[i + 2])
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

_WRITE_ERRORS = {
    -1: (LeaseLost, "the lease is held by another producer"),
    -2: (StreamNotFound, "unknown or expired stream"),
    -3: (LeaseLost, "the stream has finished"),
}


class RedisStore:
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

        ``timeout`` bounds every call (and connecting); blocking reads wait at
        most ``block`` seconds per round trip on top of it.  Each follower reading
        the store holds one of ``max_connections`` while it waits; other calls
        share the rest.
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
        self.ttl = ttl
        self.live_ttl = live_ttl
        self.max_events = max_events
        self.timeout = timeout
        self.block = block
        self.presence = 2 * block + timeout
        self._lease_ttl = lease_ttl
        self._prefix = key_prefix
        self._channel = key_prefix + "cancel"
        self._waiters: dict[str, anyio.Event] = {}
        self._listener: asyncio.Task[None] | None = None
        self._pending: list[tuple[list[str], list[str | int], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._operations = 0
        self._errors: tuple[type[Exception], ...] = (RedisError, OSError)
        self._no_script = NoScriptError
        # One immediate retry on a dropped connection (a pooled one a restart closed); no
        # retry on timeouts, which would double the wait.
        options: dict[str, Any] = {
            "socket_timeout": timeout + block,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        }
        # Typed loosely on purpose: the package's reply types differ between its versions.
        self._client: Any = from_url(url, max_connections=max_connections, **options)
        self._write = self._client.register_script(_WRITE)
        self._acquire = self._client.register_script(_ACQUIRE)
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)
        self._cancel = self._client.register_script(_CANCEL)

    @property
    def lease_ttl(self) -> float:
        """Seconds an unrenewed lease lasts."""
        return self._lease_ttl

    @property
    def operations(self) -> int:
        """Round trips to Redis so far (a script or pipeline counts once)."""
        return self._operations

    async def create(self, request: bytes, *, owner: str | None, holder: str) -> str:
        """Start a stream whose lease ``holder`` holds; return its new id."""
        stream_id = new_stream_id()
        m, _, lease, _ = self._keys(stream_id)
        fields: dict[str, bytes | str | int] = {"r": request, "s": "live", "n": 0}
        if owner is not None:
            fields["o"] = owner
        with self._guard(stream_id):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hset(m, mapping=fields)
                pipe.pexpire(m, _ms(self.live_ttl))
                pipe.set(lease, holder, px=_ms(self._lease_ttl))
                await pipe.execute()
        return stream_id

    async def info(self, stream_id: str) -> StreamInfo:
        """The stream's metadata; ``StreamNotFound`` when unknown or expired."""
        m, _, lease, _ = self._keys(stream_id)
        with self._guard(stream_id):
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.hgetall(m)
                pipe.get(lease)
                meta, holder = await pipe.execute()
        if not meta:
            raise StreamNotFound("unknown or expired stream", stream_id=stream_id)
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
        m, e, _, a = self._keys(stream_id)
        with self._guard(stream_id):
            state, last = await self._client.hmget(m, ["s", "n"])
        if state is None:
            raise StreamNotFound("unknown or expired stream", stream_id=stream_id)
        if state != b"live" and after >= int(last):
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
                with self._guard(stream_id):
                    state, last = await self._client.hmget(m, ["s", "n"])
                if state is None:
                    raise StreamNotFound("stream expired while followed", stream_id=stream_id)
                if state != b"live" and position >= int(last):
                    return
                continue
            entries = reply[0][1]
            for event, terminal in _decode_terminal(stream_id, entries, position):
                yield event
                position = event.seq
                if terminal:
                    return

    async def followed(self, stream_id: str) -> bool:
        """Whether a follower was reading within the last ``presence`` seconds."""
        _, _, _, a = self._keys(stream_id)
        with self._guard(stream_id):
            return bool(await self._client.exists(a))

    async def acquire_lease(self, stream_id: str, holder: str) -> bool:
        """Take the lease if it is free or expired (``SET NX PX``)."""
        m, e, lease, _ = self._keys(stream_id)
        args: list[str | int] = [holder, _ms(self._lease_ttl), _ms(self.live_ttl)]
        with self._guard(stream_id):
            return bool(await self._acquire(keys=[m, e, lease], args=args))

    async def renew_lease(self, stream_id: str, holder: str) -> Renewal:
        """Extend ``holder``'s lease if it holds it; and the stream's flags (one script)."""
        m, e, lease, a = self._keys(stream_id)
        args: list[str | int] = [holder, _ms(self._lease_ttl), _ms(self.live_ttl)]
        with self._guard(stream_id):
            held, cancelled, followed = await self._renew(keys=[m, e, lease, a], args=args)
        return Renewal(held=held == 1, cancelled=cancelled == 1, followed=followed == 1)

    async def release_lease(self, stream_id: str, holder: str) -> None:
        """Give the lease up now (only if ``holder`` holds it)."""
        _, _, lease, _ = self._keys(stream_id)
        with self._guard(stream_id):
            await self._release(keys=[lease], args=[holder])

    async def cancel(self, stream_id: str) -> None:
        """Ask the producer to stop: sets the flag and publishes the id."""
        m, _, _, _ = self._keys(stream_id)
        with self._guard(stream_id):
            found = await self._cancel(keys=[m], args=[self._channel, stream_id])
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
        for task in (self._listener, self._flusher):
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

    async def _store(
        self, stream_id: str, holder: str, events: Sequence[StoredEvent], *, final: bool
    ) -> None:
        args: list[str | int] = [
            holder,
            "1" if final else "0",
            _ms(self.live_ttl),
            _ms(self.ttl),
            self.max_events,
            _ms(self._lease_ttl),
        ]
        for event in events:
            args += (event.seq, event.name, event.data)
        keys = list(self._keys(stream_id)[:3])
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((keys, args, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        with self._guard(stream_id, count=False):
            result = await future
        if result == -4:
            raise ValueError(f"events {[e.seq for e in events]} are not consecutive")
        if result in _WRITE_ERRORS:
            error, message = _WRITE_ERRORS[result]
            raise error(message, stream_id=stream_id)

    async def _flush(self) -> None:
        """Send the writes waiting, all in one pipeline, until none wait (group commit):
        under load one round trip carries the appends of many streams."""
        while self._pending:
            batch, self._pending = self._pending, []
            self._operations += 1
            try:
                with anyio.fail_after(self.timeout):
                    async with self._client.pipeline(transaction=False) as pipe:
                        for keys, args, _ in batch:
                            pipe.evalsha(self._write.sha, len(keys), *keys, *args)
                        results = await pipe.execute(raise_on_error=False)
                    for index, result in enumerate(results):
                        if isinstance(result, self._no_script):
                            # Redis lost its scripts (a restart): load it, then write alone.
                            keys, args, _ = batch[index]
                            results[index] = await self._write(keys=keys, args=args)
            except Exception as exc:
                results = [exc] * len(batch)
            for (_, _, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue  # its caller gave up
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    @contextmanager
    def _guard(
        self, stream_id: str | None, wait: float = 0.0, *, count: bool = True
    ) -> Iterator[None]:
        """Count one round trip, bound it in time, and translate the client's errors."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigurationError("RedisStore runs on asyncio only") from None
        if count:
            self._operations += 1
        try:
            with anyio.fail_after(self.timeout + wait):
                yield
        except TimeoutError as exc:
            raise StoreUnavailable("Redis did not answer in time", stream_id=stream_id) from exc
        except self._errors as exc:
            message = f"Redis is unavailable: {type(exc).__name__}: {exc}"
            raise StoreUnavailable(message, stream_id=stream_id) from exc


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
