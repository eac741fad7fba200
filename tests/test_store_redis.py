"""RedisStore when Redis dies, restarts or stops answering: one typed error, fast, never a hang."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest

from rawsse import ConfigurationError
from rawsse.relay import RedisStore, StoredEvent, StoreUnavailable, StreamNotFound

from .redis_server import RedisServer, free_port, require_redis_server

REQUEST = b"{}"


@pytest.fixture
def anyio_backend() -> str:
    """The redis package's client is asyncio-only."""
    return "asyncio"


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A Redis server of this test's own, free to kill."""
    require_redis_server()
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def store(own_server: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore(own_server.url, timeout=1.0, block=0.5)
    yield store
    await store.aclose()


def text(seq: int) -> StoredEvent:
    return StoredEvent(seq, "text", f'{{"choice":0,"text":"t{seq}"}}')


@pytest.mark.anyio
async def test_redis_killed_mid_follow_raises_our_error_fast(
    store: RedisStore, own_server: RedisServer
) -> None:
    sid = await store.create(REQUEST, owner=None, holder="p")
    await store.append(sid, "p", [text(1), text(2)])
    got: list[StoredEvent] = []
    killed_at = 0.0
    with anyio.fail_after(10), pytest.raises(StoreUnavailable) as caught:  # noqa: PT012
        async for event in store.follow(sid):
            got.append(event)
            if event.seq == 2:
                killed_at = time.monotonic()
                own_server.kill()
    assert time.monotonic() - killed_at < 2.5
    assert got == [text(1), text(2)]
    assert caught.value.stream_id == sid
    # Every other call fails the same way, just as fast.
    for call in (
        store.info(sid),
        store.append(sid, "p", [text(3)]),
        store.renew_lease(sid, "p"),
        store.create(REQUEST, owner=None, holder="p"),
    ):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await call
        assert time.monotonic() - started < 2.5


@pytest.mark.anyio
async def test_a_cancel_on_one_instance_wakes_the_producer_on_another(
    store: RedisStore, own_server: RedisServer
) -> None:
    other = RedisStore(own_server.url, timeout=1.0, block=0.5)
    try:
        sid = await store.create(REQUEST, owner=None, holder="p")
        woke: list[float] = []

        async def producer() -> None:
            if await store.wait_cancelled(sid, 10):
                woke.append(time.monotonic())

        async with anyio.create_task_group() as tg:
            tg.start_soon(producer)
            await anyio.sleep(0.3)  # the subscription is made by the first wait
            cancelled_at = time.monotonic()
            await other.cancel(sid)
        assert woke[0] - cancelled_at < 0.3
        before = store.operations
        assert not await store.wait_cancelled(sid, 0.1)
        assert store.operations == before  # waiting costs no round trip
    finally:
        await other.aclose()


@pytest.mark.anyio
async def test_a_producer_renewing_hears_of_a_dead_redis(
    store: RedisStore, own_server: RedisServer
) -> None:
    sid = await store.create(REQUEST, owner=None, holder="p")
    assert not await store.wait_cancelled(sid, 0.2)
    own_server.kill()
    started = time.monotonic()
    assert not await store.wait_cancelled(sid, 0.2)  # the subscription's loss is no cancel
    with pytest.raises(StoreUnavailable):
        await store.renew_lease(sid, "p")
    assert time.monotonic() - started < 2.5


@pytest.mark.anyio
async def test_after_a_restart_without_persistence_streams_are_gone_and_calls_work(
    store: RedisStore, own_server: RedisServer
) -> None:
    sid = await store.create(REQUEST, owner=None, holder="p")
    own_server.kill()
    own_server.start()
    # The pooled connection the restart closed is replaced without an error of its own.
    with pytest.raises(StreamNotFound):
        await store.info(sid)
    fresh = await store.create(REQUEST, owner=None, holder="p")
    assert (await store.info(fresh)).holder == "p"


@pytest.mark.anyio
async def test_nothing_listening_fails_fast() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout=1.0)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unavailable"):
        await store.create(REQUEST, owner=None, holder="p")
    assert time.monotonic() - started < 2.5
    await store.aclose()


@pytest.mark.anyio
async def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as silent:
        # Connections complete in the backlog, but nothing ever reads or answers them.
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        store = RedisStore(f"redis://127.0.0.1:{port}/0", timeout=0.5, block=0.2)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.info("x" * 24)
        elapsed = time.monotonic() - started
        await store.aclose()
    assert 0.4 < elapsed < 2.5


def test_redis_store_refuses_trio_with_a_clear_error() -> None:
    import trio

    async def main() -> None:
        store = RedisStore("redis://127.0.0.1:1/0")
        with pytest.raises(ConfigurationError, match="asyncio"):
            await store.info("x" * 24)

    trio.run(main)
