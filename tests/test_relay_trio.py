"""RelayApp under trio: hypercorn's trio worker, over the fixture server and the scripted
server (stream, heartbeats, a browser that leaves)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from .relay_helpers import FixtureServer, parse_events, serve_trio
from .server import KEEPALIVE, Hang, ServerThread, chunk, sse_script

hypercorn_trio = pytest.importorskip("hypercorn.trio", reason="hypercorn is not installed")
trio = pytest.importorskip("trio")

CHAT = {"model": "rawsse/demo", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def fixtures() -> Iterator[FixtureServer]:
    with FixtureServer(speed=0) as server:
        yield server


def test_relay_app_streams_under_trio(fixtures: FixtureServer) -> None:
    with serve_trio(fixtures.base_url, fixtures.models) as url:
        response = httpx.post(url + "/chat", json=CHAT, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    events = parse_events(response.content)
    assert events[0][0] == "start"
    assert events[-1][1]["status"] == "complete"


def test_heartbeats_and_disconnect_under_trio() -> None:
    scripted = ServerThread().start()
    try:
        scripted.expect(sse_script(KEEPALIVE + chunk(content="a"), then=[Hang(10)]))
        with (
            serve_trio(scripted.url, ["test/model"], heartbeat=0.1) as url,
            httpx.Client(timeout=10) as http,
        ):
            body = {**CHAT, "model": "test/model"}
            seen = b""
            with http.stream("POST", url + "/chat", json=body) as r:
                for data in r.iter_raw():
                    seen += data
                    if seen.count(b": hb\n\n") >= 3:
                        break
                left = time.monotonic()
            assert scripted.wait_disconnect() - left < 0.1
        assert b'"text":"a"' in seen
    finally:
        scripted.stop()
