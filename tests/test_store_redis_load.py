"""RedisStore under load: many callers share a few pipelines, and a late event loop is not a
dead Redis (while a Redis that stops answering still fails in time)."""

from __future__ import annotations

import os
import signal
import time

import anyio
import pytest

from rawsse.relay import RedisStore, StoredEvent, StoreUnavailable

from .redis_server import RedisServer
from .test_store_redis import anyio_backend, own_server, store, text

__all__ = ["anyio_backend", "own_server", "store"]  # the fixtures, imported for pytest to find

STREAMS = 1000
WIDE = StoredEvent(2, "text", '{"choice":0,"text":"é \\" 🌍"}')
"""Multibyte text and an escaped quote: the events go to Redis as one JSON argument."""


def pause(server: RedisServer, sig: signal.Signals) -> None:
    """SIGSTOP: Redis stops answering (its connections stay open); SIGCONT: it goes on."""
    assert server.process is not None
    os.kill(server.process.pid, sig)


async def connected_clients(url: str) -> int:
    from redis.asyncio import from_url

    client = from_url(url)
    try:
        return int((await client.info("clients"))["connected_clients"]) - 1
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_a_thousand_streams_at_once_share_a_few_connections(
    store: RedisStore, own_server: RedisServer
) -> None:
    before = await connected_clients(own_server.url)
    ids: list[str] = []

    async def one(index: int) -> None:
        sid = await store.create(b"{}", owner=str(index), holder=f"p{index}")
        await store.append(sid, f"p{index}", [text(1), WIDE])
        renewal = await store.renew_lease(sid, f"p{index}")
        assert renewal.held
        await store.finish(sid, f"p{index}", [text(3)])
        ids.append(sid)

    operations = store.operations
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            for index in range(STREAMS):
                group.start_soon(one, index)
    assert len(set(ids)) == STREAMS
    # Group commit: 4,000 calls in far fewer round trips, on a handful of connections.
    assert store.operations - operations < STREAMS
    assert await connected_clients(own_server.url) - before <= 6
    for sid in ids[:: STREAMS // 10]:
        assert await store.read(sid) == [text(1), WIDE, text(3)]
        assert (await store.info(sid)).finished


@pytest.mark.anyio
async def test_an_event_loop_blocked_longer_than_the_timeout_is_not_a_dead_redis(
    store: RedisStore, own_server: RedisServer
) -> None:
    sid = await store.create(b"{}", owner=None, holder="p")

    async def block_the_loop() -> None:
        # The append's pipeline is sent and its reply is due while the loop is blocked:
        # Redis answers the moment it runs again, yet the wall clock has passed the
        # timeout three times over.
        pause(own_server, signal.SIGSTOP)
        try:
            await anyio.sleep(0.1)
            time.sleep(3 * store.timeout)  # noqa: ASYNC251 (a descheduled process, a long collection)
        finally:
            pause(own_server, signal.SIGCONT)

    async with anyio.create_task_group() as group:
        group.start_soon(block_the_loop)
        await anyio.sleep(0.01)
        await store.append(sid, "p", [text(1)])
    assert await store.read(sid) == [text(1)]


@pytest.mark.anyio
async def test_a_redis_that_stops_answering_still_fails_in_time(
    store: RedisStore, own_server: RedisServer
) -> None:
    sid = await store.create(b"{}", owner=None, holder="p")
    pause(own_server, signal.SIGSTOP)
    started = time.monotonic()
    try:
        with anyio.fail_after(10), pytest.raises(StoreUnavailable, match="in time"):
            await store.append(sid, "p", [text(1)])
    finally:
        pause(own_server, signal.SIGCONT)
    assert 0.9 < time.monotonic() - started < 4.0
