"""Hypothesis on the store contract: any interleaving of writes, reads from any position and
reconnects gives every follower exactly the events after its position, in order, once."""

from __future__ import annotations

import json
import secrets
from contextlib import aclosing
from dataclasses import dataclass

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawsse.relay import MemoryStore, RedisStore, StoredEvent, StreamStore

from .redis_server import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture, imported for pytest to find


@dataclass(frozen=True)
class Follower:
    after: int
    """Where it first attaches (may be ahead of what is stored)."""
    chunks: list[int]
    """Events read per connection before reconnecting (the last one repeats)."""
    pauses: list[int]
    """Scheduler yields between connections."""
    delay: int
    """Scheduler yields before it first attaches."""


@dataclass(frozen=True)
class Scenario:
    batches: list[int]
    """Events per write; the last write finishes the stream."""
    pauses: list[int]
    """Scheduler yields after each write."""
    followers: list[Follower]

    @property
    def total(self) -> int:
        return sum(self.batches)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    batches = draw(st.lists(st.integers(1, 6), min_size=1, max_size=10))
    total = sum(batches)
    pauses = draw(st.lists(st.integers(0, 3), min_size=len(batches), max_size=len(batches)))
    followers = draw(
        st.lists(
            st.builds(
                Follower,
                after=st.integers(0, total),
                chunks=st.lists(st.integers(1, 8), min_size=1, max_size=6),
                pauses=st.lists(st.integers(0, 3), min_size=1, max_size=6),
                delay=st.integers(0, 12),
            ),
            min_size=1,
            max_size=4,
        )
    )
    return Scenario(batches, pauses, followers)


def event(seq: int, total: int) -> StoredEvent:
    if seq == total:
        return StoredEvent(seq, "done", '{"status":"complete"}')
    return StoredEvent(seq, "text", json.dumps({"choice": 0, "text": f"é{seq}\n"}))


async def checkpoints(n: int) -> None:
    for _ in range(n):
        await anyio.lowlevel.checkpoint()


async def run(store: StreamStore, scenario: Scenario) -> None:
    total = scenario.total
    events = [event(seq, total) for seq in range(1, total + 1)]
    sid = await store.create(b"{}", owner=None, holder="p")
    received: dict[int, list[StoredEvent]] = {}

    async def produce() -> None:
        seq = 0
        for i, (size, pause) in enumerate(zip(scenario.batches, scenario.pauses, strict=True)):
            batch = events[seq : seq + size]
            seq += size
            if i == len(scenario.batches) - 1:
                await store.finish(sid, "p", batch)
            else:
                await store.append(sid, "p", batch)
            await checkpoints(pause)

    async def follow(index: int, follower: Follower) -> None:
        got: list[StoredEvent] = []
        await checkpoints(follower.delay)
        position = follower.after
        connection = 0
        while True:
            chunk = follower.chunks[min(connection, len(follower.chunks) - 1)]
            ended = True
            async with aclosing(store.follow(sid, position)) as stream:
                async for item in stream:
                    got.append(item)
                    position = item.seq
                    if len(got) % chunk == 0:
                        ended = False
                        break  # a reconnect, from the last event seen
            if ended:
                break
            await checkpoints(follower.pauses[connection % len(follower.pauses)])
            connection += 1
        received[index] = got

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            for index, follower in enumerate(scenario.followers):
                tg.start_soon(follow, index, follower)
    for index, follower in enumerate(scenario.followers):
        assert received[index] == events[follower.after :], follower
    assert await store.read(sid) == events


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=150, deadline=None)
@given(scenario=scenarios())
def test_memory_store_followers_see_exact_sequences(backend: str, scenario: Scenario) -> None:
    async def main() -> None:
        await run(MemoryStore(), scenario)

    anyio.run(main, backend=backend)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_redis_store_followers_see_exact_sequences(
    redis_server: RedisServer, scenario: Scenario
) -> None:
    async def main() -> None:
        prefix = f"prop-{secrets.token_hex(6)}:"
        store = RedisStore(redis_server.url, key_prefix=prefix, block=0.1)
        try:
            await run(store, scenario)
        finally:
            await store.aclose()

    anyio.run(main, backend="asyncio")
