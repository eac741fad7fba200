"""The resumable-stream store contract, run against MemoryStore and RedisStore alike."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from rawsse.relay import (
    LeaseLost,
    MemoryStore,
    RedisStore,
    StoredEvent,
    StoreFull,
    StoreUnavailable,
    StreamNotFound,
    StreamStore,
)
from rawsse.relay._store import choice_texts, is_stream_id, new_stream_id, parse_events, sse_bytes

from .redis_server import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture, imported for pytest to find

pytestmark = pytest.mark.anyio

MakeStore = Callable[..., StreamStore]

REQUEST = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'


def text(seq: int, chunk: str, choice: int = 0) -> StoredEvent:
    return StoredEvent(seq, "text", json.dumps({"choice": choice, "text": chunk}))


def done(seq: int) -> StoredEvent:
    return StoredEvent(seq, "done", '{"status":"complete"}')


def texts(first: int, last: int) -> list[StoredEvent]:
    return [text(seq, f"t{seq} ") for seq in range(first, last + 1)]


@pytest.fixture(params=["memory", "redis"])
def kind(request: pytest.FixtureRequest, anyio_backend: str) -> str:
    if request.param == "redis" and anyio_backend == "trio":
        pytest.skip("the redis package's client runs on asyncio only")
    return str(request.param)


@pytest.fixture
async def make_store(kind: str, request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    """A factory of fresh stores of one kind (Redis ones under a fresh key prefix)."""
    stores: list[StreamStore] = []
    server: RedisServer | None = None
    if kind == "redis":
        server = request.getfixturevalue("redis_server")

    def make(**options: Any) -> StreamStore:
        store: StreamStore
        if server is None:
            store = MemoryStore(**options)
        else:
            prefix = f"test-{secrets.token_hex(6)}:"
            options.setdefault("block", 0.25)
            store = RedisStore(server.url, key_prefix=prefix, **options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.aclose()


async def collect(store: StreamStore, stream_id: str, after: int = 0) -> list[StoredEvent]:
    return [event async for event in store.follow(stream_id, after)]


# -- create, append, read, follow ---------------------------------------------------------


async def test_create_gives_a_fresh_unguessable_id_and_the_metadata(make_store: MakeStore) -> None:
    store = make_store()
    first = await store.create(REQUEST, owner="user-1", holder="p1")
    second = await store.create(b"{}", owner=None, holder="p2")
    assert first != second
    assert is_stream_id(first)
    assert len(first) >= 22  # 22 URL-safe characters carry 132 bits
    info = await store.info(first)
    assert (info.stream_id, info.owner, info.request) == (first, "user-1", REQUEST)
    assert (info.last_seq, info.finished, info.cancelled, info.holder) == (0, False, False, "p1")
    assert (await store.info(second)).owner is None


async def test_read_after_any_position(make_store: MakeStore) -> None:
    store = make_store()
    sid = await store.create(REQUEST, owner=None, holder="p")
    events = texts(1, 5)
    await store.append(sid, "p", events[:2])
    await store.append(sid, "p", events[2:])
    for after in range(7):
        assert await store.read(sid, after) == events[after:]
    assert (await store.info(sid)).last_seq == 5


async def test_follow_replays_then_follows_live_until_the_terminal_event(
    make_store: MakeStore,
) -> None:
    store = make_store()
    sid = await store.create(REQUEST, owner=None, holder="p")
    events = [*texts(1, 6), done(7)]
    await store.append(sid, "p", events[:2])
    got: list[StoredEvent] = []

    async def follower() -> None:
        got.extend(await collect(store, sid, after=1))

    async with anyio.create_task_group() as tg:
        tg.start_soon(follower)
        await anyio.sleep(0.05)
        await store.append(sid, "p", events[2:4])
        await anyio.sleep(0.05)
        await store.append(sid, "p", events[4:6])
        await store.finish(sid, "p", events[6:])
    assert got == events[1:]


async def test_several_followers_from_different_positions(make_store: MakeStore) -> None:
    store = make_store()
    sid = await store.create(REQUEST, owner=None, holder="p")
    events = [*texts(1, 20), done(21)]
    await store.append(sid, "p", events[:5])
    results: dict[int, list[StoredEvent]] = {}

    async def follower(after: int) -> None:
        results[after] = await collect(store, sid, after)

    async with anyio.create_task_group() as tg:
        for after in (0, 3, 5):
            tg.start_soon(follower, after)
        for seq in range(6, 21):
            await store.append(sid, "p", [events[seq - 1]])
            await anyio.sleep(0.005)
        await store.finish(sid, "p", events[20:])
    assert results == {after: events[after:] for after in (0, 3, 5)}


async def test_appending_again_is_harmless_and_gaps_are_refused(make_store: MakeStore) -> None:
    store = make_store()
    sid = await store.create(REQUEST, owner=None, holder="p")
    await store.append(sid, "p", texts(1, 3))
    await store.append(sid, "p", texts(2, 4))  # a retried append overlapping the stored ones
    assert await store.read(sid) == texts(1, 4)
    with pytest.raises(ValueError, match="6"):
        await store.append(sid, "p", texts(6, 6))
    assert await store.read(sid) == texts(1, 4)


# -- terminal and TTL -----------------------------------------------------------------------


async def test_a_finished_stream_replays_whole_and_refuses_writes(make_store: MakeStore) -> None:
    store = make_store()
    sid = await store.create(REQUEST, owner=None, holder="p")
    events = [*texts(1, 3), done(4)]
    await store.append(sid, "p", events[:3])
    await store.finish(sid, "p", events[3:])
    info = await store.info(sid)
    assert (info.finished, info.last_seq, info.holder) == (True, 4, None)
    assert await collect(store, sid) == events
    assert await collect(store, sid, after=2) == events[2:]
    with anyio.fail_after(2):
        assert await collect(store, sid, after=4) == []
    with pytest.raises(LeaseLost):
        await store.append(sid, "p", texts(5, 5))
    assert not await store.acquire_lease(sid, "q")


async def test_a_finished_stream_expires_after_the_ttl(make_store: MakeStore) -> None:
    store = make_store(ttl=0.3)
    sid = await store.create(REQUEST, owner=None, holder="p")
    await store.finish(sid, "p", [text(1, "a"), done(2)])
    assert await store.read(sid) == [text(1, "a"), done(2)]
    await anyio.sleep(0.6)
    with pytest.raises(StreamNotFound):
        await store.info(sid)
    with pytest.raises(StreamNotFound):
        await collect(store, sid)


async def test_an_abandoned_live_stream_expires_and_its_followers_hear_of_it(
    make_store: MakeStore,
) -> None:
    store = make_store(live_ttl=0.3, lease_ttl=0.2)
    sid = await store.create(REQUEST, owner=None, holder="p")
    await store.append(sid, "p", texts(1, 2))
    got: list[StoredEvent] = []
    with anyio.fail_after(5), pytest.raises(StreamNotFound):  # noqa: PT012
        async for event in store.follow(sid):
            got.append(event)
            if event.seq == 2 and isinstance(store, MemoryStore):
                # MemoryStore expires lazily, on its next call: make one once idle.
                await anyio.sleep(0.4)
                await store.create(b"{}", owner=None, holder="q")
    assert got == texts(1, 2)


async def test_unknown_ids(make_store: MakeStore) -> None:
    store = make_store()
    sid = new_stream_id()
    with pytest.raises(StreamNotFound) as caught:
        await store.info(sid)
    assert caught.value.stream_id == sid
    with pytest.raises(StreamNotFound):
        await store.read(sid)
    with pytest.raises(StreamNotFound):
        await collect(store, sid)
    with pytest.raises(StreamNotFound):
        await store.cancel(sid)
    with pytest.raises(StreamNotFound):
        await store.append(sid, "p", texts(1, 1))


# -- the producer lease -----------------------------------------------------------------------


async def test_the_lease_is_held_renewed_and_released(make_store: MakeStore) -> None:
    store = make_store(lease_ttl=0.4)
    sid = await store.create(REQUEST, owner=None, holder="p")
    assert not await store.acquire_lease(sid, "q")
    for _ in range(4):  # renewing keeps it well past one lease_ttl
        await anyio.sleep(0.2)
        assert (await store.renew_lease(sid, "p")).held
        assert not await store.acquire_lease(sid, "q")
    assert not (await store.renew_lease(sid, "q")).held
    await store.release_lease(sid, "q")  # not the holder: no effect
    assert (await store.info(sid)).holder == "p"
    await store.release_lease(sid, "p")
    assert (await store.info(sid)).holder is None
    assert await store.acquire_lease(sid, "q")
    assert (await store.info(sid)).holder == "q"


async def test_an_unrenewed_lease_expires_and_fences_the_old_producer(
    make_store: MakeStore,
) -> None:
    store = make_store(lease_ttl=0.3)
    sid = await store.create(REQUEST, owner=None, holder="p")
    await store.append(sid, "p", texts(1, 2))
    await anyio.sleep(0.5)
    assert (await store.info(sid)).holder is None
    assert await store.acquire_lease(sid, "q")
    with pytest.raises(LeaseLost):
        await store.append(sid, "p", texts(3, 3))
    assert not (await store.renew_lease(sid, "p")).held
    await store.append(sid, "q", texts(3, 3))
    await store.finish(sid, "q", [done(4)])
    assert await collect(store, sid) == [*texts(1, 3), done(4)]


async def test_a_lapsed_lease_nobody_took_is_taken_back(make_store: MakeStore) -> None:
    store = make_store(lease_ttl=0.3)
    sid = await store.create(REQUEST, owner=None, holder="p")
    await anyio.sleep(0.5)  # a long pause of the producer: its lease lapses
    assert (await store.info(sid)).holder is None
    await store.append(sid, "p", texts(1, 1))  # nobody took it: the write takes it back
    assert (await store.info(sid)).holder == "p"
    assert not await store.acquire_lease(sid, "q")
    await anyio.sleep(0.5)
    assert (await store.renew_lease(sid, "p")).held  # so does a renewal
    assert (await store.info(sid)).holder == "p"
    await store.finish(sid, "p", [done(2)])
    assert not (await store.renew_lease(sid, "p")).held  # but never after the end


async def test_of_racing_takers_exactly_one_wins(make_store: MakeStore) -> None:
    store = make_store(lease_ttl=0.2)
    for _ in range(5):
        sid = await store.create(REQUEST, owner=None, holder="dead")
        await anyio.sleep(0.3)
        winners: list[str] = []

        async def contend(name: str, sid: str = sid, winners: list[str] = winners) -> None:
            if await store.acquire_lease(sid, name):
                winners.append(name)

        async with anyio.create_task_group() as tg:
            for n in range(8):
                tg.start_soon(contend, f"taker-{n}")
        assert len(winners) == 1
        assert (await store.info(sid)).holder == winners[0]


# -- cancel -----------------------------------------------------------------------------------


async def test_cancel_wakes_the_producer_at_once(make_store: MakeStore) -> None:
    store = make_store()
    sid = await store.create(REQUEST, owner=None, holder="p")
    started = time.monotonic()
    assert not await store.wait_cancelled(sid, 0.2)
    assert time.monotonic() - started >= 0.19
    woke: list[float] = []

    async def producer() -> None:
        if await store.wait_cancelled(sid, 10):
            woke.append(time.monotonic())

    async with anyio.create_task_group() as tg:
        tg.start_soon(producer)
        await anyio.sleep(0.1)
        cancelled_at = time.monotonic()
        await store.cancel(sid)
    assert woke
    assert woke[0] - cancelled_at < 0.5
    assert (await store.info(sid)).cancelled


async def test_a_cancel_while_nobody_waits_shows_in_the_renewal(make_store: MakeStore) -> None:
    store = make_store()
    sid = await store.create(REQUEST, owner=None, holder="p")
    assert not (await store.renew_lease(sid, "p")).cancelled
    await store.cancel(sid)
    renewal = await store.renew_lease(sid, "p")
    assert (renewal.held, renewal.cancelled) == (True, True)
    assert (await store.info(sid)).cancelled


async def test_followed_while_a_follower_reads(make_store: MakeStore) -> None:
    store = make_store()
    sid = await store.create(REQUEST, owner=None, holder="p")
    assert not await store.followed(sid)
    async with anyio.create_task_group() as tg:
        tg.start_soon(collect, store, sid)
        await anyio.sleep(0.1)
        assert await store.followed(sid)
        assert (await store.renew_lease(sid, "p")).followed
        await anyio.sleep(0.6)  # longer than a blocking read: still there
        assert await store.followed(sid)
        tg.cancel_scope.cancel()
    # RedisStore knows presence by a key its followers refresh: it lapses after `presence`.
    await anyio.sleep(getattr(store, "presence", 0) + 0.2)
    assert not await store.followed(sid)


async def test_operations_are_counted(make_store: MakeStore) -> None:
    store = make_store()
    before = store.operations
    sid = await store.create(REQUEST, owner=None, holder="p")
    await store.append(sid, "p", texts(1, 50))  # 50 events, one operation
    await store.finish(sid, "p", [done(51)])
    assert store.operations - before == 3


# -- MemoryStore's byte bound -----------------------------------------------------------------


async def test_memory_store_evicts_oldest_finished_streams_first(anyio_backend: str) -> None:
    store = MemoryStore(max_bytes=2000)
    finished = []
    for _ in range(3):
        sid = await store.create(b"x" * 100, owner=None, holder="p")
        await store.finish(sid, "p", [text(1, "y" * 300), done(2)])
        finished.append(sid)
    live = await store.create(b"x" * 100, owner=None, holder="p")
    await store.append(live, "p", [text(1, "z" * 200)])
    assert store.size <= 2000
    assert len(store) == 4
    # One more finished stream goes over: the oldest finished one goes, not the live one.
    newest = await store.create(b"x" * 100, owner=None, holder="p")
    await store.finish(newest, "p", [text(1, "y" * 300), done(2)])
    assert store.size <= 2000
    with pytest.raises(StreamNotFound):
        await store.info(finished[0])
    for sid in [*finished[1:], live, newest]:
        await store.info(sid)


async def test_memory_store_never_evicts_live_streams_and_then_refuses_new_ones(
    anyio_backend: str,
) -> None:
    store = MemoryStore(max_bytes=1000)
    old = await store.create(b"{}", owner=None, holder="p")
    await store.finish(old, "p", [done(1)])
    live = await store.create(b"{}", owner=None, holder="p")
    await store.append(live, "p", [text(1, "z" * 1500)])  # a live stream may outgrow the bound
    with pytest.raises(StreamNotFound):
        await store.info(old)
    assert store.size > 1000
    with pytest.raises(StoreFull) as caught:
        await store.create(b"{}", owner=None, holder="q")
    assert isinstance(caught.value, StoreUnavailable)
    # Finished, it is over the bound alone: evicted at once, which makes room.
    await store.finish(live, "p", [done(2)])
    with pytest.raises(StreamNotFound):
        await store.info(live)
    assert store.size == 0
    await store.create(b"{}", owner=None, holder="q")


# -- pure helpers -----------------------------------------------------------------------------


def test_stream_ids_are_unguessable_and_checked() -> None:
    ids = {new_stream_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_stream_id(i) and len(i) == 24 for i in ids)
    for bad in ["", "short", "a" * 65, "x" * 23 + "/", "x" * 23 + ":", "{" + "x" * 23 + "}"]:
        assert not is_stream_id(bad)


def test_sse_bytes_and_choice_texts() -> None:
    events = [
        StoredEvent(1, "start", '{"stream_id":"s"}'),
        text(2, "Hé"),
        text(3, "llo", choice=1),
        text(4, "llo"),
        StoredEvent(5, "done", "{}"),
    ]
    assert sse_bytes(events[:2]) == (
        b'id: 1\nevent: start\ndata: {"stream_id":"s"}\n\n'
        b'id: 2\nevent: text\ndata: {"choice": 0, "text": "H\\u00e9"}\n\n'
    )
    assert choice_texts(events) == {0: "Héllo", 1: "llo"}
    opening = b": rawsse\n\nretry: 1000\n"
    wire = opening + sse_bytes(events[:3]) + b": hb\n\n" + sse_bytes(events[3:])
    assert parse_events(wire) == events
    assert parse_events(b": hb\n\n") == []
    thinking = StoredEvent(6, "reasoning", '{"choice":0,"text":"hm"}')
    assert choice_texts([*events, thinking], "reasoning") == {0: "hm"}
