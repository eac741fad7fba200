"""relay_stream over real TCP (tests/server.py): bytes, one chunk per read, heartbeats, and
closing upstream as soon as the consumer goes away; on asyncio and trio."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

from rawsse import AsyncClient, ServerSentEvent, SSEDecoder
from rawsse.relay import relay_stream

from .server import (
    DONE,
    KEEPALIVE,
    KEY,
    MESSAGES,
    USAGE,
    Hang,
    Reset,
    Send,
    ServerThread,
    Sleep,
    chunk,
    error_script,
    running_server,
    sse_script,
)

pytestmark = pytest.mark.anyio

BODY = (
    chunk(content="Hel")
    + chunk(content="lo ")
    + chunk(content="wörld")
    + chunk(finish="stop", usage=USAGE)
    + DONE
)
START = (
    b'id: 1\nevent: start\ndata: {"stream_id":null,"model":"test/model-2026","id":"gen-test-1",'
    b'"extras":{"provider":["TestProvider"],"created":[1795000000]}}\n\n'
)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with running_server() as s:
        yield s


def client(server: ServerThread) -> AsyncClient:
    return AsyncClient(base_url=server.url, api_key=KEY, retries=0)


def events(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    found = [e for e in SSEDecoder().feed(data) if isinstance(e, ServerSentEvent)]
    return [(e.event, json.loads(e.data)) for e in found]


async def collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [c async for c in chunks]


async def test_one_read_is_one_chunk_and_the_bytes_are_exact(server: ServerThread) -> None:
    server.expect(sse_script(BODY))
    async with client(server) as c:
        out = await collect(relay_stream(c.stream(model="m", messages=MESSAGES)))
    assert out[0] == b": rawsse\n\n"
    # [DONE] came in the same read: the terminal event leaves in the same chunk.
    events_part = (
        START
        + b'id: 2\nevent: text\ndata: {"choice":0,"text":"Hel"}\n\n'
        + b'id: 3\nevent: text\ndata: {"choice":0,"text":"lo "}\n\n'
        + 'id: 4\nevent: text\ndata: {"choice":0,"text":"wörld"}\n\n'.encode()
        + b'id: 5\nevent: usage\ndata: {"prompt_tokens":10,"completion_tokens":4,'
        b'"total_tokens":14,"reasoning_tokens":null,"cached_tokens":null,"cost":0.00012}\n\n'
    )
    assert out[1].startswith(events_part)
    done = out[1][len(events_part) :]
    ((name, data),) = events(done)
    assert done.startswith(b"id: 6\nevent: done\n")
    assert name == "done"
    ttft = data.pop("ttft")
    assert isinstance(ttft, float)
    assert 0 <= ttft < 5
    assert data == {
        "status": "complete",
        "finish_reason": "stop",
        "finish_reasons": {"0": "stop"},
        "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14,
                  "reasoning_tokens": None, "cached_tokens": None, "cost": 0.00012},
        "cost": 0.00012,
    }  # fmt: skip
    assert len(out) == 2


async def test_separate_reads_are_separate_chunks(server: ServerThread) -> None:
    cut = len(chunk(content="Hel"))
    server.expect(sse_script(BODY, splits=[cut], delay=0.05))
    async with client(server) as c:
        out = await collect(relay_stream(c.stream(model="m", messages=MESSAGES)))
    assert [n for n, _ in events(out[1])] == ["start", "text"]
    # the second read ends with [DONE]: the terminal event leaves with it
    assert [n for n, _ in events(out[2])] == ["text", "text", "usage", "done"]
    assert len(out) == 3


async def test_heartbeats_keep_a_silent_upstream_connection_alive(server: ServerThread) -> None:
    first = chunk(content="a")
    script = sse_script(first, then=[Sleep(0.55), Send(KEEPALIVE), Send(BODY)])
    server.expect(script)
    times: list[tuple[float, bytes]] = []
    async with client(server) as c:
        t0 = anyio.current_time()
        async for data in relay_stream(c.stream(model="m", messages=MESSAGES), heartbeat=0.1):
            times.append((anyio.current_time() - t0, data))  # noqa: PERF401 - as it arrives
    beats = [t for t, d in times if d == b": hb\n\n"]
    assert len(beats) >= 3, times
    assert all(b - a >= 0.099 for a, b in itertools.pairwise(beats))
    joined = b"".join(d for _, d in times)
    assert "".join(d["text"] for n, d in events(joined) if n == "text") == "aHello wörld"
    assert events(joined)[-1][0] == "done"


async def test_closing_the_iterator_closes_upstream_at_once(server: ServerThread) -> None:
    server.expect(sse_script(chunk(content="a"), then=[Hang(10)]))
    async with client(server) as c:
        stream = c.stream(model="m", messages=MESSAGES)
        chunks = relay_stream(stream)
        async for data in chunks:
            if b"event: text" in data:
                break
        closed = time.monotonic()
        await chunks.aclose()  # type: ignore[attr-defined]
        assert server.wait_disconnect() - closed < 0.1
    assert stream.result.status == "cancelled"


async def test_cancelling_the_consumer_before_the_first_token_closes_upstream(
    server: ServerThread,
) -> None:
    server.expect(sse_script(KEEPALIVE, then=[Hang(10)]))
    got: list[bytes] = []
    async with client(server) as c:
        stream = c.stream(model="m", messages=MESSAGES)
        with anyio.move_on_after(0.3):
            async for data in relay_stream(stream):
                got.append(data)  # noqa: PERF401 - kept when the scope cancels the loop
        cancelled = time.monotonic()
        assert server.wait_disconnect() - cancelled < 0.1
    assert got == [b": rawsse\n\n"]
    assert stream.result.status == "cancelled"


async def test_an_upstream_error_mid_stream_is_the_terminal_error_event(
    server: ServerThread,
) -> None:
    error = {"code": 502, "message": "Provider disconnected"}
    server.expect(sse_script(chunk(content="part") + chunk(error=error, finish="error")))
    async with client(server) as c:
        out = b"".join(await collect(relay_stream(c.stream(model="m", messages=MESSAGES))))
    assert events(out)[-1] == (
        "error",
        {
            "status": "error",
            "message": "the server sent an error in the stream: Provider disconnected (code 502)",
            "code": 502,
            "http_status": None,
            "partial_text_length": 4,
            "text": "part",
        },
    )
    assert [n for n, _ in events(out)] == ["start", "text", "error"]


async def test_a_reset_connection_is_a_truncated_error_event(server: ServerThread) -> None:
    server.expect(sse_script(chunk(content="part"), then=[Reset()]))
    async with client(server) as c:
        out = b"".join(await collect(relay_stream(c.stream(model="m", messages=MESSAGES))))
    name, data = events(out)[-1]
    assert (name, data["status"], data["text"]) == ("error", "truncated", "part")


async def test_an_http_error_before_the_stream_is_an_error_event(server: ServerThread) -> None:
    body = json.dumps({"error": {"code": 429, "message": "slow down"}})
    server.expect(error_script(429, body, headers={"Retry-After": "7"}))
    async with client(server) as c:
        out = b"".join(await collect(relay_stream(c.stream(model="m", messages=MESSAGES))))
    assert events(out) == [
        ("start", {"stream_id": None, "model": None, "id": None}),
        ("error", {"status": "error", "message": "slow down", "code": 429, "http_status": 429,
                   "partial_text_length": 0, "text": ""}),
    ]  # fmt: skip


async def test_coalescing_through_relay_stream(server: ServerThread) -> None:
    server.expect(sse_script(BODY, splits=[10, 200, 300], delay=0.01))
    async with client(server) as c:
        out = b"".join(
            await collect(relay_stream(c.stream(model="m", messages=MESSAGES), coalesce=10.0))
        )
    assert [(n, d.get("text")) for n, d in events(out)][:3] == [
        ("start", None),
        ("text", "Hello wörld"),
        ("usage", None),
    ]
