"""After ``[DONE]`` the relay ends the browser's stream at once and reads upstream on
for ``DONE_GRACE`` only, as the clients do: over real TCP against the scripted server,
``relay_stream`` on asyncio and trio, ``RelayApp`` under uvicorn and hypercorn-on-trio."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from rawsse import AsyncClient, Timeouts
from rawsse._base_client import DONE_GRACE
from rawsse.relay import relay_stream
from tests import server as fx
from tests.server import ServerThread

from .relay_helpers import parse_events, serve_asgi, serve_trio

# Generous: a relay that waited for any of these limits after [DONE] fails the test.
LIMITS = Timeouts(connect=5.0, first_token=5.0, idle=3.0, stall=5.0, total=8.0)
HEAD = fx.chunk(content="Hel")
LAST = fx.chunk(content="lo", finish="stop", usage=fx.USAGE) + fx.DONE
SILENT = fx.Script(steps=[fx.Send(HEAD), fx.Send(LAST), fx.Sleep(6)])
# Waiting for the server (idle: 3 s) takes that long; ending at the grace takes
# DONE_GRACE plus the exchange, well under this on a loaded machine.
FAST = DONE_GRACE + 1.0
CHAT = {"model": "test/model", "messages": [{"role": "user", "content": "hi"}]}


def assert_done(events: list[tuple[str, dict[str, Any]]]) -> None:
    assert [name for name, _ in events] == ["start", "text", "text", "usage", "done"]
    assert "".join(d["text"] for name, d in events if name == "text") == "Hello"
    assert events[-1][1]["status"] == "complete"
    assert events[-1][1]["finish_reason"] == "stop"


@pytest.mark.anyio
async def test_relay_stream_ends_at_done_and_closes_a_silent_upstream_at_the_grace(
    server: ServerThread,
) -> None:
    server.expect(SILENT)
    started = time.monotonic()
    done_seen: float | None = None
    body = b""
    async with AsyncClient(base_url=server.url, api_key="", retries=0, timeout=LIMITS) as client:
        stream = client.stream(model="test/model", messages=CHAT["messages"])
        async for data in relay_stream(stream, heartbeat=None):
            body += data
            if done_seen is None and b"event: done" in body:
                done_seen = time.monotonic()
        ended = time.monotonic()
    assert_done(parse_events(body))
    assert done_seen is not None
    assert done_seen - started < FAST
    assert ended - started < FAST
    assert server.wait_disconnect() - started < FAST  # the upstream connection was closed


def assert_fast(
    events: list[tuple[str, dict[str, Any]]],
    started: float,
    done_seen: float,
    ended: float,
    closed: float,
) -> None:
    """The browser got ``done`` and the end soon, and the upstream connection was closed."""
    assert_done(events)
    assert done_seen - started < FAST
    assert ended - started < FAST
    assert closed < FAST


def post(url: str) -> tuple[list[tuple[str, dict[str, Any]]], float, float]:
    """The relay's events, when ``done`` arrived and when the response ended (monotonic)."""
    body = b""
    done_seen: float | None = None
    with httpx.Client(timeout=10) as http, http.stream("POST", url + "/chat", json=CHAT) as r:
        assert r.status_code == 200
        for data in r.iter_raw():
            body += data
            if done_seen is None and b"event: done" in body:
                done_seen = time.monotonic()
    assert done_seen is not None
    return parse_events(body), done_seen, time.monotonic()


def test_relay_app_ends_at_done_and_closes_a_silent_upstream_at_the_grace(
    server: ServerThread,
) -> None:
    clients: list[AsyncClient] = []

    def make() -> Any:
        from rawsse.relay import RelayApp

        client = AsyncClient(base_url=server.url, api_key="", retries=0, timeout=LIMITS)
        clients.append(client)
        return RelayApp(client, models=["test/model"], heartbeat=None)

    async def stop() -> None:
        for client in clients:
            await client.aclose()

    with serve_asgi(make, on_stop=stop) as url:
        server.expect(SILENT)
        started = time.monotonic()
        events, done_seen, ended = post(url)
        closed = server.wait_disconnect() - started
    assert_fast(events, started, done_seen, ended, closed)


def test_relay_app_under_trio_ends_at_done_and_closes_a_silent_upstream_at_the_grace(
    server: ServerThread,
) -> None:
    with serve_trio(server.url, ["test/model"], heartbeat=None) as url:
        server.expect(SILENT)
        started = time.monotonic()
        events, done_seen, ended = post(url)
        closed = server.wait_disconnect() - started
    assert_fast(events, started, done_seen, ended, closed)
