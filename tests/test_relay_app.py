"""RelayApp under real uvicorn, backed by the fixture server (recorded timing) or the
scripted server: headers, exact text, disconnects, status passthrough, policy, CORS, mounting."""

from __future__ import annotations

import importlib.resources
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from rawsse import AsyncClient, accumulate, parse_chat_stream
from rawsse.relay import RelayApp

from .relay_helpers import FixtureServer, parse_events, serve_asgi
from .server import (
    KEEPALIVE,
    Hang,
    Script,
    Send,
    ServerThread,
    Sleep,
    chunk,
    error_script,
    sse_script,
)

CHAT = {"model": "rawsse/demo", "messages": [{"role": "user", "content": "hi"}]}

Relay = Callable[..., AbstractContextManager[str]]


@pytest.fixture(scope="module")
def fixtures() -> Iterator[FixtureServer]:
    with FixtureServer() as server:  # the shipped recordings, recorded timing
        yield server


@pytest.fixture(scope="module")
def scripted() -> Iterator[ServerThread]:
    server = ServerThread().start()
    yield server
    server.stop()


def relay_factory(
    base_url: str, models: list[str], *, timed: bool = True, **options: Any
) -> AbstractContextManager[str]:
    clients: list[AsyncClient] = []
    # The fixture server replays without waiting when asked; the timing tests don't ask.
    headers = {} if timed else {"x-rawsse-speed": "instant"}

    def make() -> RelayApp:
        client = AsyncClient(base_url=base_url, api_key="", retries=0, headers=headers)
        clients.append(client)
        return RelayApp(client, models=models, **options)

    async def stop() -> None:
        for client in clients:
            await client.aclose()

    return serve_asgi(make, on_stop=stop)


@pytest.fixture
def relay(fixtures: FixtureServer) -> Relay:
    def start(timed: bool = False, **options: Any) -> AbstractContextManager[str]:
        return relay_factory(fixtures.base_url, fixtures.models, timed=timed, **options)

    return start


@pytest.fixture
def relay_scripted(scripted: ServerThread) -> Relay:
    def start(**options: Any) -> AbstractContextManager[str]:
        return relay_factory(scripted.url, ["test/model"], **options)

    return start


def recorded_text(fixtures: FixtureServer, model: str) -> str:
    fixture = next(f for f in fixtures.fixtures if f.id == model)
    return accumulate(parse_chat_stream(fixture.cassette.body)).text


# -- streaming --------------------------------------------------------------------------


def test_a_stream_has_the_headers_and_the_recorded_text(
    relay: Relay, fixtures: FixtureServer
) -> None:
    with relay(timed=True) as url, httpx.Client(timeout=10) as http:
        started = time.monotonic()
        arrivals: list[tuple[float, bytes]] = []
        with http.stream("POST", url + "/chat", json=CHAT) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            assert response.headers["cache-control"] == "no-cache, no-transform"
            assert response.headers["x-accel-buffering"] == "no"
            assert "access-control-allow-origin" not in response.headers
            for data in response.iter_raw():
                arrivals.append((time.monotonic() - started, data))  # noqa: PERF401 - as it arrives
    body = b"".join(d for _, d in arrivals)
    assert body.startswith(b": rawsse\n\n")
    events = parse_events(body)
    text = "".join(d["text"] for n, d in events if n == "text")
    assert text == recorded_text(fixtures, "rawsse/demo")
    assert events[0][0] == "start"
    assert [n for n, _ in events][-2:] == ["usage", "done"]
    assert events[-1][1]["status"] == "complete"
    first_text = next(t for t, d in arrivals if b"event: text" in d)
    assert first_text < arrivals[-1][0] - 0.05  # tokens arrive as recorded, not at the end


def test_an_upstream_error_mid_stream_is_the_terminal_error_event(
    relay: Relay, fixtures: FixtureServer
) -> None:
    with relay() as url:
        response = httpx.post(url + "/chat", json={**CHAT, "model": "rawsse/error-midstream"})
    assert response.status_code == 200
    events = parse_events(response.content)
    name, data = events[-1]
    partial = "".join(d["text"] for n, d in events if n == "text")
    assert (name, data["status"], data["text"]) == ("error", "error", partial)
    assert data["partial_text_length"] == len(partial) > 0
    assert [n for n, _ in events].count("error") == 1
    assert "done" not in [n for n, _ in events]


def test_coalescing_and_heartbeat_options(relay: Relay, fixtures: FixtureServer) -> None:
    with relay(timed=True, coalesce=0.2) as url:
        response = httpx.post(url + "/chat", json=CHAT, timeout=10)
    texts = [d["text"] for n, d in parse_events(response.content) if n == "text"]
    assert "".join(texts) == recorded_text(fixtures, "rawsse/demo")
    assert 1 <= len(texts) < 20  # about one event per 0.2 s window


# -- disconnects cancel upstream --------------------------------------------------------


def test_a_browser_that_leaves_mid_stream_cancels_upstream(
    relay_scripted: Relay, scripted: ServerThread
) -> None:
    scripted.expect(sse_script(chunk(content="a"), then=[Hang(10)]))
    with relay_scripted() as url, httpx.Client(timeout=10) as http:
        with http.stream("POST", url + "/chat", json={**CHAT, "model": "test/model"}) as r:
            seen = b""
            for data in r.iter_raw():
                seen += data
                if b"event: text" in seen:
                    break
            left = time.monotonic()
        assert scripted.wait_disconnect() - left < 0.1


def test_a_browser_that_leaves_before_the_first_token_cancels_upstream(
    relay_scripted: Relay, scripted: ServerThread
) -> None:
    scripted.expect(sse_script(KEEPALIVE, then=[Hang(10)]))
    with relay_scripted() as url, httpx.Client(timeout=10) as http:
        with http.stream("POST", url + "/chat", json={**CHAT, "model": "test/model"}) as r:
            assert next(r.iter_raw()) == b": rawsse\n\n"
            left = time.monotonic()
        assert scripted.wait_disconnect() - left < 0.1


def test_a_browser_that_leaves_before_upstream_answers_cancels_upstream(
    relay_scripted: Relay, scripted: ServerThread
) -> None:
    scripted.expect(Script(head_delay=10))
    with relay_scripted() as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/chat", json={**CHAT, "model": "test/model"}, timeout=0.3)
        left = time.monotonic()
        assert scripted.wait_disconnect() - left < 0.1


# -- upstream failures before the stream keep their status ------------------------------


def test_429_stays_429_with_retry_after(relay_scripted: Relay, scripted: ServerThread) -> None:
    body = json.dumps({"error": {"code": 429, "message": "Rate limit exceeded"}})
    scripted.expect(error_script(429, body, headers={"Retry-After": "7"}))
    with relay_scripted() as url:
        response = httpx.post(url + "/chat", json={**CHAT, "model": "test/model"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": {"code": 429, "message": "Rate limit exceeded"}}


def test_upstream_refusing_the_owners_key_is_a_502(
    relay_scripted: Relay, scripted: ServerThread
) -> None:
    body = json.dumps({"error": {"code": 401, "message": "No auth credentials found"}})
    scripted.expect(error_script(401, body))
    with relay_scripted() as url:
        response = httpx.post(url + "/chat", json={**CHAT, "model": "test/model"})
    assert response.status_code == 502
    assert "credentials" in response.json()["error"]["message"]


def test_an_unreachable_upstream_is_a_502() -> None:
    with relay_factory("http://127.0.0.1:9/api/v1", ["m"]) as url:
        response = httpx.post(url + "/chat", json={**CHAT, "model": "m"})
    assert response.status_code == 502
    assert "unreachable" in response.json()["error"]["message"]


# -- the owner's policy -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{", 400, "not valid JSON"),
        (b"[]", 400, "must be a JSON object"),
        (
            json.dumps({**CHAT, "model": "openai/gpt-5"}).encode(),
            400,
            "'openai/gpt-5' is not allowed",
        ),
        (json.dumps({"messages": CHAT["messages"]}).encode(), 400, "'model' is missing"),
        (json.dumps({**CHAT, "messages": []}).encode(), 400, "'messages' must be"),
        (json.dumps({**CHAT, "messages": ["hi"]}).encode(), 400, "messages[0] must be"),
        (json.dumps({**CHAT, "stream": False}).encode(), 400, "'stream' must be true"),
        (
            json.dumps({**CHAT, "tools": [], "logit_bias": {}, "temperature": 0.5}).encode(),
            400,
            "parameters not allowed here: logit_bias, tools",
        ),
    ],
)
def test_bad_requests_get_400_json_with_a_clear_message(
    relay: Relay, body: bytes, status: int, message: str
) -> None:
    with relay() as url:
        response = httpx.post(
            url + "/chat", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == status
    assert message in response.json()["error"]["message"]


def test_the_body_limit_gives_413(relay: Relay) -> None:
    big = json.dumps({**CHAT, "messages": [{"role": "user", "content": "x" * 2000}]}).encode()
    with relay(max_body=1000) as url:
        response = httpx.post(
            url + "/chat", content=big, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert "over 1000 bytes" in response.json()["error"]["message"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            for i in range(0, len(big), 100):
                yield big[i : i + 100]

        response = httpx.post(
            url + "/chat", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413


def test_only_json_bodies_are_accepted(relay: Relay) -> None:
    with relay() as url:
        response = httpx.post(
            url + "/chat", content=json.dumps(CHAT), headers={"content-type": "text/plain"}
        )
    assert response.status_code == 415


def test_owner_fixed_params_and_caps_reach_upstream(
    relay_scripted: Relay, scripted: ServerThread
) -> None:
    scripted.expect(sse_script(chunk(content="a", finish="stop") + b"data: [DONE]\n\n"))
    with relay_scripted(fixed={"provider": {"sort": "price"}}, caps={"max_tokens": 100}) as url:
        body = {**CHAT, "model": "test/model", "max_tokens": 5000, "temperature": 0.2}
        response = httpx.post(url + "/chat", json=body, headers={"authorization": "Bearer browser"})
    assert response.status_code == 200
    sent = scripted.exchanges[-1]
    assert sent.json()["max_tokens"] == 100
    assert sent.json()["temperature"] == 0.2
    assert sent.json()["provider"] == {"sort": "price"}
    assert "authorization" not in sent.headers  # the browser's credentials stay with the relay


@pytest.mark.parametrize("asynchronous", [False, True])
def test_authorize_gives_401_and_403(relay: Relay, asynchronous: bool) -> None:
    def decide(scope: dict[str, Any], body: bytes) -> bool | int | None:
        token = dict(scope["headers"]).get(b"authorization")
        if token is None:
            return 401
        if token != b"Bearer good":
            return False
        assert json.loads(body)["model"] == "rawsse/demo"
        return True

    async def decide_async(scope: dict[str, Any], body: bytes) -> bool | int | None:
        return decide(scope, body)

    with relay(authorize=decide_async if asynchronous else decide) as url:
        missing = httpx.post(url + "/chat", json=CHAT)
        wrong = httpx.post(url + "/chat", json=CHAT, headers={"authorization": "Bearer bad"})
        good = httpx.post(url + "/chat", json=CHAT, headers={"authorization": "Bearer good"})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 403
    assert good.status_code == 200
    assert parse_events(good.content)[-1][0] == "done"


def test_methods_and_unknown_paths(relay: Relay) -> None:
    with relay() as url:
        assert httpx.get(url + "/chat").status_code == 405
        assert httpx.post(url + "/models").status_code == 405
        missing = httpx.get(url + "/nothing")
        assert missing.status_code == 404
        assert "POST /chat" in missing.json()["error"]["message"]
        assert httpx.get(url + "/").status_code == 404  # no demo page unless demo=True


def test_models_lists_the_allowlist(relay: Relay, fixtures: FixtureServer) -> None:
    with relay() as url:
        response = httpx.get(url + "/models")
    assert response.json() == {"object": "list", "data": [{"id": m} for m in fixtures.models]}


@pytest.mark.parametrize(
    ("path", "name", "content_type"),
    [
        ("/rawsse.js", "rawsse.js", "text/javascript; charset=utf-8"),
        ("/", "demo.html", "text/html; charset=utf-8"),
    ],
)
def test_the_browser_files_are_served_when_installed(
    relay: Relay, path: str, name: str, content_type: str
) -> None:
    resource = importlib.resources.files("rawsse.relay").joinpath(name)
    with relay(demo=True) as url:
        response = httpx.get(url + path)
    if resource.is_file():
        assert response.status_code == 200
        assert response.headers["content-type"] == content_type
        assert response.content == resource.read_bytes()
    else:
        assert response.status_code == 404
        assert name in response.json()["error"]["message"]


# -- CORS -------------------------------------------------------------------------------


def test_cors_is_off_by_default_and_other_origins_cannot_post(relay: Relay) -> None:
    with relay() as url:
        other = httpx.post(url + "/chat", json=CHAT, headers={"origin": "https://evil.example"})
        assert other.status_code == 403
        assert "access-control-allow-origin" not in other.headers
        preflight = httpx.options(url + "/chat", headers={"origin": "https://evil.example"})
        assert preflight.status_code == 403
        host = url.removeprefix("http://")
        same = httpx.post(url + "/chat", json=CHAT, headers={"origin": f"http://{host}"})
        assert same.status_code == 200


def test_cors_for_listed_origins(relay: Relay) -> None:
    origin = "https://app.example"
    with relay(cors_origins=[origin]) as url:
        preflight = httpx.options(
            url + "/chat",
            headers={"origin": origin, "access-control-request-headers": "content-type"},
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == origin
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert preflight.headers["access-control-allow-headers"] == "content-type"
        response = httpx.post(url + "/chat", json=CHAT, headers={"origin": origin})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == origin
        assert response.headers["vary"] == "origin"
        refused = httpx.post(url + "/chat", json=CHAT, headers={"origin": "https://other.example"})
        assert refused.status_code == 403


# -- mounted in Starlette / FastAPI ------------------------------------------------------


@pytest.mark.parametrize("framework", ["starlette", "fastapi"])
def test_mounted_under_a_prefix(fixtures: FixtureServer, framework: str) -> None:
    clients: list[AsyncClient] = []

    def make() -> Any:
        client = AsyncClient(
            base_url=fixtures.base_url,
            api_key="",
            retries=0,
            headers={"x-rawsse-speed": "instant"},
        )
        clients.append(client)
        relay = RelayApp(client, models=fixtures.models, demo=True)
        if framework == "fastapi":
            from fastapi import FastAPI

            app = FastAPI()
            app.mount("/relay", relay)
            return app
        from starlette.applications import Starlette
        from starlette.routing import Mount

        return Starlette(routes=[Mount("/relay", app=relay)])

    async def stop() -> None:
        await clients[0].aclose()

    with serve_asgi(make, on_stop=stop) as url:
        models = httpx.get(url + "/relay/models")
        assert models.status_code == 200
        response = httpx.post(url + "/relay/chat", json=CHAT, timeout=10)
        assert response.status_code == 200
        assert parse_events(response.content)[-1][0] == "done"
        redirect = httpx.get(url + "/relay", follow_redirects=False)
        assert redirect.status_code in (307, 404)
        if redirect.status_code == 307:
            assert redirect.headers["location"].endswith("/relay/")


def test_heartbeats_flow_while_upstream_is_silent(
    relay_scripted: Relay, scripted: ServerThread
) -> None:
    body = chunk(content="a", finish="stop") + b"data: [DONE]\n\n"
    scripted.expect(sse_script(KEEPALIVE, then=[Sleep(0.65), Send(body)]))
    with relay_scripted(heartbeat=0.1) as url, httpx.Client(timeout=10) as http:
        arrivals: list[tuple[float, bytes]] = []
        started = time.monotonic()
        with http.stream("POST", url + "/chat", json={**CHAT, "model": "test/model"}) as r:
            for data in r.iter_raw():
                arrivals.append((time.monotonic() - started, data))  # noqa: PERF401 - as it arrives
    beats = [t for t, d in arrivals if d == b": hb\n\n"]
    assert len(beats) >= 4
    assert parse_events(b"".join(d for _, d in arrivals))[-1][0] == "done"
