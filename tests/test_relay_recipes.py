"""The README's relay snippets, as written there, under real uvicorn over the fixture server:
the FastAPI recipe done right with ``relay_stream``, and ``RelayApp`` mounted in FastAPI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import rawsse

from .relay_helpers import FixtureServer, parse_events, serve_asgi
from .server import ServerThread, error_script

MESSAGES = [{"role": "user", "content": "hi"}]

pydantic = pytest.importorskip("pydantic", reason="fastapi (and pydantic) are not installed")


class Ask(pydantic.BaseModel):  # at module level, so FastAPI resolves the annotation
    messages: list[dict[str, str]]


@pytest.fixture(scope="module")
def fixtures() -> Iterator[FixtureServer]:
    with FixtureServer(speed=0) as server:
        yield server


def recipe_app(base_url: str, model: str, clients: list[rawsse.AsyncClient]) -> Any:
    # The README's snippet; only the client's base URL and the model differ.
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, StreamingResponse

    from rawsse.relay import relay_stream

    app = FastAPI()
    client = rawsse.AsyncClient(base_url=base_url, api_key="", retries=0)
    clients.append(client)

    @app.post("/chat")
    async def chat(ask: Ask) -> Any:
        stream = client.stream(model=model, messages=ask.messages, max_tokens=1024)
        try:
            await stream.__aenter__()  # upstream's answer head: a 429 stays a 429
        except rawsse.APIStatusError as exc:
            retry = exc.headers.get("retry-after")
            headers = {"Retry-After": retry} if retry is not None else {}
            error = {"error": {"code": exc.status, "message": exc.message}}
            return JSONResponse(error, status_code=exc.status, headers=headers)
        return StreamingResponse(
            relay_stream(stream),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
        )

    return app


def serve_recipe(base_url: str, model: str) -> Any:
    clients: list[rawsse.AsyncClient] = []

    async def stop() -> None:
        for client in clients:
            await client.aclose()

    return serve_asgi(lambda: recipe_app(base_url, model, clients), on_stop=stop)


def test_the_fastapi_recipe_done_right_streams_the_relay_events(fixtures: FixtureServer) -> None:
    with serve_recipe(fixtures.base_url, "rawsse/demo") as url:
        response = httpx.post(url + "/chat", json={"messages": MESSAGES}, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no"
    assert response.content.startswith(b": rawsse\n\n")
    events = parse_events(response.content)
    assert events[0][0] == "start"
    assert events[-1][0] == "done"
    assert events[-1][1]["status"] == "complete"


def test_the_fastapi_recipe_keeps_a_429() -> None:
    scripted = ServerThread().start()
    try:
        body = json.dumps({"error": {"code": 429, "message": "slow down"}})
        scripted.expect(error_script(429, body, headers={"Retry-After": "3"}))
        with serve_recipe(scripted.url, "m") as url:
            response = httpx.post(url + "/chat", json={"messages": MESSAGES})
    finally:
        scripted.stop()
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json() == {"error": {"code": 429, "message": "slow down"}}


def test_relay_app_mounted_in_fastapi_as_the_readme_shows(fixtures: FixtureServer) -> None:
    clients: list[rawsse.AsyncClient] = []

    def make() -> Any:
        from fastapi import FastAPI

        from rawsse.relay import RelayApp

        client = rawsse.AsyncClient(base_url=fixtures.base_url, api_key="", retries=0)
        clients.append(client)
        relay = RelayApp(
            client,
            models=["rawsse/demo", "rawsse/reasoning"],
            caps={"max_tokens": 1024},
            fixed={"provider": {"data_collection": "deny"}},
            cors_origins=["https://app.example"],
            demo=True,
        )
        app = FastAPI()
        app.mount("/relay", relay)
        return app

    async def stop() -> None:
        await clients[0].aclose()

    with serve_asgi(make, on_stop=stop) as url:
        body = {"model": "rawsse/demo", "messages": MESSAGES}
        response = httpx.post(url + "/relay/chat", json=body, timeout=10)
        assert parse_events(response.content)[-1][1]["status"] == "complete"
        cors = httpx.post(url + "/relay/chat", json=body, headers={"origin": "https://app.example"})
        assert cors.headers["access-control-allow-origin"] == "https://app.example"
        assert httpx.get(url + "/relay/models").json()["data"][1] == {"id": "rawsse/reasoning"}
