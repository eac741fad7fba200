"""Resumable relay streams in one process (MemoryStore, or RedisStore where named), under real
uvicorn, backed by the fixture server with recorded timing: ids, replay, reconnect, cancel,
linger, owners, 404s, and a store that fails."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import anyio
import httpx
import pytest

from rawsse import AsyncClient, accumulate, parse_chat_stream
from rawsse.relay import (
    DEFAULT_LINGER,
    MemoryStore,
    RedisStore,
    RelayApp,
    StoredEvent,
    add_store_arguments,
    open_store,
    store_options,
)

from .redis_server import RedisServer, free_port, require_redis_server
from .relay_helpers import FixtureServer, parse_events, serve_asgi

CHAT = {"model": "rawsse/demo", "messages": [{"role": "user", "content": "hi"}]}
Event = tuple[str, dict[str, Any]]
Relay = Callable[..., AbstractContextManager[str]]


@pytest.fixture(scope="module")
def fixtures() -> Iterator[FixtureServer]:
    with FixtureServer() as server:
        yield server


@pytest.fixture
def relay(fixtures: FixtureServer) -> Relay:
    """``relay(store=..., **options)``: a RelayApp under uvicorn; yields its base URL."""

    def start(
        make_store: Callable[[], Any] = MemoryStore, speed: str = "1", **options: Any
    ) -> AbstractContextManager[str]:
        clients: list[AsyncClient] = []
        stores: list[Any] = []

        def make() -> RelayApp:
            client = AsyncClient(
                base_url=fixtures.base_url,
                api_key="",
                retries=0,
                headers={"x-rawsse-speed": speed},
            )
            clients.append(client)
            store = make_store()
            stores.append(store)
            return RelayApp(client, models=fixtures.models, store=store, **options)

        async def stop() -> None:
            for client in clients:
                await client.aclose()
            for store in stores:
                await store.aclose()

        return serve_asgi(make, on_stop=stop)

    return start


def recorded_text(fixtures: FixtureServer, model: str = "rawsse/demo") -> str:
    fixture = next(f for f in fixtures.fixtures if f.id == model)
    return accumulate(parse_chat_stream(fixture.cassette.body)).text


def text_of(events: list[Event]) -> str:
    return "".join(d["text"] for n, d in events if n == "text" and d["choice"] == 0)


def ids_of(body: bytes) -> list[int]:
    return [int(line[4:]) for line in body.split(b"\n") if line.startswith(b"id: ")]


def read_until(chunks: Iterator[bytes], texts: int) -> bytes:
    """Read until ``texts`` text events arrived (the rest stays in ``chunks``)."""
    data = b""
    for chunk in chunks:
        data += chunk
        if data.count(b"event: text") >= texts:
            break
    return data


def resume(http: httpx.Client, url: str, stream_id: str, after: int) -> httpx.Response:
    return http.get(f"{url}/chat/{stream_id}", headers={"last-event-id": str(after)})


def test_a_resumable_stream_has_an_id_in_the_header_and_start_and_sse_ids(
    relay: Relay, fixtures: FixtureServer
) -> None:
    with relay(speed="0") as url, httpx.Client(timeout=20) as http:
        response = http.post(url + "/chat", json=CHAT)
        assert response.status_code == 200
        stream_id = response.headers["x-rawsse-stream-id"]
        assert len(stream_id) >= 22
        body = response.content
        events = parse_events(body)
        assert events[0][0] == "start"
        assert events[0][1]["stream_id"] == stream_id
        assert events[0][1]["model"] == "rawsse/demo"
        assert ids_of(body) == list(range(1, len(events) + 1))
        assert text_of(events) == recorded_text(fixtures)
        assert events[-1][0] == "done"
        # The whole stream stays replayable, from any position.
        for after in (0, 1, 5, len(events) - 1, len(events)):
            again = resume(http, url, stream_id, after)
            assert again.status_code == 200
            assert again.headers["content-type"] == "text/event-stream; charset=utf-8"
            assert again.headers["x-rawsse-stream-id"] == stream_id
            assert parse_events(again.content) == events[after:]
            assert ids_of(again.content) == list(range(after + 1, len(events) + 1))
        by_query = http.get(f"{url}/chat/{stream_id}?after=3")
        assert parse_events(by_query.content) == events[3:]


def test_disconnect_mid_answer_then_reconnect_gets_exactly_the_rest(
    relay: Relay, fixtures: FixtureServer
) -> None:
    with relay() as url, httpx.Client(timeout=20) as http:
        with http.stream("POST", url + "/chat", json=CHAT) as response:
            stream_id = response.headers["x-rawsse-stream-id"]
            first = read_until(response.iter_raw(), 5)
        # Only whole events count: the last id seen is the position.
        seen = parse_events(first[: first.rindex(b"\n\n") + 2])
        last = ids_of(first[: first.rindex(b"\n\n") + 2])[-1]
        time.sleep(0.3)  # the generation goes on meanwhile
        rest = resume(http, url, stream_id, last)
        events = seen + parse_events(rest.content)
        assert ids_of(rest.content)[0] == last + 1
        assert text_of(events) == recorded_text(fixtures)
        assert events[-1][0] == "done"
        assert [n for n, _ in events].count("start") == 1


def test_several_followers_at_once(relay: Relay, fixtures: FixtureServer) -> None:
    with relay() as url, httpx.Client(timeout=20) as http:
        with http.stream("POST", url + "/chat", json=CHAT) as response:
            stream_id = response.headers["x-rawsse-stream-id"]
            second = resume(http, url, stream_id, 0)  # a second tab, while the first reads
            body = response.read()
        assert parse_events(second.content) == parse_events(body)


def test_delete_cancels_at_once(relay: Relay, fixtures: FixtureServer) -> None:
    with relay(speed="0.5") as url, httpx.Client(timeout=20) as http:
        with http.stream("POST", url + "/chat", json=CHAT) as response:
            stream_id = response.headers["x-rawsse-stream-id"]
            chunks = response.iter_raw()
            seen = read_until(chunks, 3)
            started = time.monotonic()
            stop = http.delete(f"{url}/chat/{stream_id}")
            assert stop.status_code == 200
            assert stop.json() == {"stream_id": stream_id, "cancelled": True}
            seen += b"".join(chunks)
            elapsed = time.monotonic() - started
        events = parse_events(seen)
        name, data = events[-1]
        assert (name, data["status"]) == ("error", "cancelled")
        assert elapsed < 1.0
        assert len(text_of(events)) < len(recorded_text(fixtures))


def test_nobody_back_within_linger_cancels_upstream(relay: Relay, fixtures: FixtureServer) -> None:
    with relay(speed="0.3", linger=0.5) as url, httpx.Client(timeout=20) as http:
        with http.stream("POST", url + "/chat", json=CHAT) as response:
            stream_id = response.headers["x-rawsse-stream-id"]
            read_until(response.iter_raw(), 2)
        time.sleep(2.5)
        events = parse_events(resume(http, url, stream_id, 0).content)
        name, data = events[-1]
        assert (name, data["status"]) == ("error", "cancelled")
        assert len(text_of(events)) < len(recorded_text(fixtures))


def test_unknown_ids_and_bad_positions(relay: Relay) -> None:
    with relay(speed="0") as url, httpx.Client(timeout=20) as http:
        for path in ["/chat/" + "A" * 24, "/chat/short", "/chat/..%2f..", "/chat/" + "x" * 100]:
            response = http.get(url + path)
            assert response.status_code == 404
            assert response.json()["error"]["message"] == "unknown or expired stream"
        stream_id = http.post(url + "/chat", json=CHAT).headers["x-rawsse-stream-id"]
        for bad in ["x", "-1", "1.5", "²", "9" * 30]:
            response = http.get(f"{url}/chat/{stream_id}?after={bad}")
            assert response.status_code == 400, bad
            assert "Last-Event-ID" in response.json()["error"]["message"]
        bad_header = http.get(f"{url}/chat/{stream_id}", headers={"last-event-id": "x"})
        assert bad_header.status_code == 400
        assert http.put(f"{url}/chat/{stream_id}").status_code == 405


def test_a_stream_expires_after_the_ttl(relay: Relay) -> None:
    with relay(lambda: MemoryStore(ttl=0.5), speed="0") as url, httpx.Client(timeout=20) as h:
        stream_id = h.post(url + "/chat", json=CHAT).headers["x-rawsse-stream-id"]
        assert resume(h, url, stream_id, 0).status_code == 200
        time.sleep(0.8)
        assert resume(h, url, stream_id, 0).status_code == 404


def test_streams_bound_to_a_user_are_readable_by_that_user_only(relay: Relay) -> None:
    def authorize(scope: dict[str, Any], body: bytes) -> str | bool:
        headers = dict(scope["headers"])
        user = headers.get(b"x-user", b"").decode()
        return user or False

    with relay(speed="0", authorize=authorize) as url, httpx.Client(timeout=20) as http:
        response = http.post(url + "/chat", json=CHAT, headers={"x-user": "ann"})
        stream_id = response.headers["x-rawsse-stream-id"]
        assert resume(http, url, stream_id, 0).status_code == 403  # the hook refuses
        other = http.get(f"{url}/chat/{stream_id}", headers={"x-user": "bob"})
        assert other.status_code == 404
        assert http.delete(f"{url}/chat/{stream_id}", headers={"x-user": "bob"}).status_code == 404
        mine = http.get(f"{url}/chat/{stream_id}", headers={"x-user": "ann"})
        assert parse_events(mine.content) == parse_events(response.content)


def test_a_dead_store_falls_back_to_unresumable_streams_or_fails_closed(
    relay: Relay, fixtures: FixtureServer
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with relay(lambda: RedisStore(dead, timeout=0.5), speed="0") as url:
        response = httpx.post(url + "/chat", json=CHAT, timeout=20)
        assert response.status_code == 200
        assert "x-rawsse-stream-id" not in response.headers
        events = parse_events(response.content)
        assert events[0][1]["stream_id"] is None
        assert text_of(events) == recorded_text(fixtures)
    with relay(lambda: RedisStore(dead, timeout=0.5), speed="0", fail_closed=True) as url:
        response = httpx.post(url + "/chat", json=CHAT, timeout=20)
        assert response.status_code == 503
        assert "store is unavailable" in response.json()["error"]["message"]


def test_redis_dying_mid_answer_ends_the_stream_with_a_clear_error(
    relay: Relay, fixtures: FixtureServer
) -> None:
    require_redis_server()
    server = RedisServer().start()
    try:
        store = lambda: RedisStore(server.url, timeout=0.5, block=0.25)  # noqa: E731
        with relay(store) as url, httpx.Client(timeout=20) as http:
            with http.stream("POST", url + "/chat", json=CHAT) as response:
                chunks = response.iter_raw()
                seen = read_until(chunks, 3)
                server.kill()
                started = time.monotonic()
                seen += b"".join(chunks)
            assert time.monotonic() - started < 3
            events = parse_events(seen)
            name, data = events[-1]
            assert (name, data["status"], data["code"]) == ("error", "error", "store_unavailable")
            assert data["text"] == text_of(events)
            # The relay keeps serving: new requests stream, unresumable.
            response = http.post(url + "/chat", json=CHAT, headers={"x-rawsse-speed": "0"})
            assert text_of(parse_events(response.content)) == recorded_text(fixtures)
    finally:
        server.close()


def test_events_are_json_objects_with_the_schema_names(relay: Relay) -> None:
    with relay(speed="0") as url:
        body = httpx.post(url + "/chat", json=CHAT, timeout=20).content
    for block in body.split(b"\n\n"):
        if block.startswith(b"id: "):
            assert json.loads(block.split(b"\ndata: ")[1])


def test_store_flags_for_a_relay_command_line() -> None:
    parser = argparse.ArgumentParser()
    add_store_arguments(parser)
    assert store_options(parser.parse_args([])) == {}
    options = store_options(parser.parse_args(["--store", "memory", "--linger", "2.5"]))
    assert isinstance(options["store"], MemoryStore)
    assert options["linger"] == 2.5
    options = store_options(parser.parse_args(["--store", "redis://127.0.0.1:6390/2"]))
    assert isinstance(options["store"], RedisStore)
    assert options["linger"] == DEFAULT_LINGER
    with pytest.raises(ValueError, match="redis://HOST:PORT/DB"):
        open_store("postgres://x")
    with pytest.raises(SystemExit):
        parser.parse_args(["--linger", "-1"])


class _Browser:
    """One ASGI request: the body, then ``http.disconnect`` once ``leave`` is set."""

    def __init__(self, body: bytes = b"") -> None:
        self.body = body
        self.sent_body = False
        self.leave = anyio.Event()
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.data = b""

    async def receive(self) -> dict[str, Any]:
        if not self.sent_body:
            self.sent_body = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.leave.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = dict(message["headers"])
        else:
            self.data += message.get("body", b"")
            if not message.get("more_body", False):
                self.leave.set()


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"relay.test"), *headers],
    }


@pytest.mark.anyio
async def test_resumable_streams_on_asyncio_and_trio(fixtures: FixtureServer) -> None:
    async with AsyncClient(
        base_url=fixtures.base_url, api_key="", retries=0, headers={"x-rawsse-speed": "0"}
    ) as client:
        app = RelayApp(client, models=fixtures.models, store=MemoryStore())
        post = _Browser(json.dumps(CHAT).encode())
        content = [(b"content-type", b"application/json")]
        with anyio.fail_after(20):
            await app(_scope("POST", "/chat", content), post.receive, post.send)
            stream_id = post.headers[b"x-rawsse-stream-id"].decode()
            events = parse_events(post.data)
            assert text_of(events) == recorded_text(fixtures)
            again = _Browser()
            resume_headers = [(b"last-event-id", b"2")]
            await app(
                _scope("GET", f"/chat/{stream_id}", resume_headers), again.receive, again.send
            )
    assert again.status == 200
    assert parse_events(again.data) == events[2:]


@pytest.mark.anyio
@pytest.mark.parametrize("case", ["continued", "cancelled", "tool_call"])
async def test_a_stream_whose_producer_died_is_taken_over_by_one_follower(
    fixtures: FixtureServer, case: str
) -> None:
    answer = recorded_text(fixtures)
    store = MemoryStore(lease_ttl=0.3)
    stream_id = await store.create(json.dumps(CHAT).encode(), owner=None, holder="dead")
    start = StoredEvent(1, "start", json.dumps({"stream_id": stream_id, "model": None, "id": None}))
    # What the dead instance had delivered: the answer's first 30 characters, in two events.
    stored = [start, text_event(2, answer[:12]), text_event(3, answer[12:30])]
    if case == "tool_call":
        call = {"choice": 0, "index": 0, "id": "c", "type": "function", "name": "f"}
        stored.append(StoredEvent(4, "tool_call", json.dumps({**call, "arguments": "{"})))
    await store.append(stream_id, "dead", stored)
    if case == "cancelled":
        await store.cancel(stream_id)
    headers = {"x-rawsse-speed": "0"}
    async with AsyncClient(
        base_url=fixtures.base_url, api_key="", retries=0, headers=headers
    ) as client:
        app = RelayApp(client, models=fixtures.models, store=store)
        readers = [_Browser(), _Browser()]
        started = anyio.current_time()
        with anyio.fail_after(15):
            async with anyio.create_task_group() as group:
                for reader in readers:
                    scope = _scope("GET", f"/chat/{stream_id}", [(b"last-event-id", b"1")])
                    group.start_soon(app, scope, reader.receive, reader.send)
        elapsed = anyio.current_time() - started
    assert elapsed < 0.3 + 5  # the lease lapses; a reader checks each second
    first, second = (parse_events(r.data) for r in readers)
    assert first == second  # one of them took it over; both read the same events
    assert ids_of(readers[0].data) == list(range(2, len(first) + 2))
    names = [n for n, _ in first]
    end = first[-1][1]
    if case == "continued":
        assert names.count("continued") == 1
        assert names[-1] == "done"
        assert text_of(first) == answer  # nothing lost, nothing twice
    else:
        assert "continued" not in names
        assert names[-1] == "error"
        assert end["text"] == answer[:30]
        want = ("cancelled", None) if case == "cancelled" else ("error", "producer_lost")
        assert (end["status"], end["code"]) == want


def text_event(seq: int, text: str) -> StoredEvent:
    return StoredEvent(seq, "text", json.dumps({"choice": 0, "text": text}, ensure_ascii=False))
