"""``limits=``: the size of a client's own connection pool, over real TCP.

With one connection allowed, a second stream's request reaches the server only
once the first stream has let go of its connection; ``limits`` cannot go with a
caller's ``http_client``.
"""

from __future__ import annotations

import threading
import time

import anyio
import httpx
import pytest

import rawsse
from tests.server import DONE, KEY, Script, Send, ServerThread, Sleep, chunk

ONE = httpx.Limits(max_connections=1, max_keepalive_connections=0)


def scripts() -> tuple[Script, Script]:
    slow = Script(steps=[Send(chunk(content="a")), Sleep(0.3), Send(chunk(finish="stop") + DONE)])
    fast = Script(steps=[Send(chunk(content="b", finish="stop") + DONE)])
    return slow, fast


def assert_one_after_the_other(server: ServerThread, texts: list[str]) -> None:
    first, second = server.exchanges
    assert first.disconnected_at is not None
    assert second.received_at >= first.disconnected_at
    assert sorted(texts) == ["a", "b"]


def test_sync_pool_holds_one_connection(server: ServerThread) -> None:
    server.expect(*scripts())
    texts: list[str] = []
    with rawsse.Client(base_url=server.url, api_key=KEY, limits=ONE, retries=0) as client:
        with client.stream(model="m", messages=[]) as stream:
            events = iter(stream)  # kept: a generator dropped mid-way closes the stream
            while not isinstance(next(events), rawsse.TextDelta):
                pass
            other = threading.Thread(
                target=lambda: texts.append(client.complete(model="m", messages=[]).text)
            )
            other.start()
            time.sleep(0.1)
            assert len(server.exchanges) == 1  # the second request waits for the connection
            for _ in events:
                pass
            texts.append(stream.result.text)
        other.join(5)
    assert_one_after_the_other(server, texts)


@pytest.mark.anyio
async def test_async_pool_holds_one_connection(server: ServerThread) -> None:
    server.expect(*scripts())
    texts: list[str] = []
    async with rawsse.AsyncClient(base_url=server.url, api_key=KEY, limits=ONE, retries=0) as c:

        async def second() -> None:
            texts.append((await c.complete(model="m", messages=[])).text)

        async with anyio.create_task_group() as group, c.stream(model="m", messages=[]) as stream:
            async for event in stream:
                if isinstance(event, rawsse.TextDelta):
                    break
            group.start_soon(second)
            await anyio.sleep(0.1)
            assert len(server.exchanges) == 1  # the second request waits for the connection
            texts.append((await stream.final()).text)
    assert_one_after_the_other(server, texts)


@pytest.mark.parametrize("make", [rawsse.Client, rawsse.AsyncClient])
def test_limits_are_for_the_clients_own_pool(make: type[rawsse.Client]) -> None:
    http = httpx.Client() if make is rawsse.Client else httpx.AsyncClient()
    with pytest.raises(ValueError, match="limits apply to the client's own pool"):
        make(api_key=KEY, base_url="http://127.0.0.1:9/v1", http_client=http, limits=ONE)  # type: ignore[arg-type]
