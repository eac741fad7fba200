"""RelayApp runs each stream in its request's task plus two tasks of no task group.

Under uvicorn (asyncio) and hypercorn (trio): a browser that leaves still cancels
upstream at once (before upstream answers, before the first token; mid-stream is
``test_relay_app``'s and ``test_relay_trio``'s),
and no task of the relay outlives its stream, however the stream ended.  A closed
stream's HTTP objects are freed at once, without the cyclic collector.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from rawsse import AsyncClient
from rawsse.relay import RelayApp

from .relay_helpers import parse_events, serve_asgi, serve_trio
from .server import DONE, KEEPALIVE, Hang, Script, ServerThread, chunk, sse_script

CHAT = {"model": "test/model", "messages": [{"role": "user", "content": "hi"}]}

Serve = Callable[..., AbstractContextManager[str]]


@pytest.fixture(scope="module")
def scripted() -> Iterator[ServerThread]:
    server = ServerThread().start()
    yield server
    server.stop()


def _ours(coro: Any) -> str | None:
    """The qualified name of ``coro`` when it is rawsse's own code."""
    code = getattr(coro, "cr_code", None)
    return code.co_qualname if code is not None and "rawsse" in code.co_filename else None


def _asyncio_tasks() -> list[str]:
    return [name for t in asyncio.all_tasks() if (name := _ours(t.get_coro()))]


def _trio_tasks() -> list[str]:
    import trio

    names: list[str] = []
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        if name := _ours(task.coro):
            names.append(name)
        pending.extend(t for nursery in task.child_nurseries for t in nursery.child_tasks)
    return names


def with_tasks(app: Any, tasks: Callable[[], list[str]]) -> Any:
    """``app`` that answers ``GET /tasks`` with the names of rawsse's running tasks."""

    async def served(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/tasks":
            await app(scope, receive, send)
            return
        body = json.dumps(tasks()).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return served


def serve_uvicorn(upstream: str, models: list[str], **options: Any) -> AbstractContextManager[str]:
    def make() -> Any:
        client = AsyncClient(base_url=upstream, api_key="", retries=0)
        return with_tasks(RelayApp(client, models=models, **options), _asyncio_tasks)

    return serve_asgi(make)


def serve_hypercorn(
    upstream: str, models: list[str], **options: Any
) -> AbstractContextManager[str]:
    pytest.importorskip("hypercorn.trio", reason="hypercorn is not installed")
    return serve_trio(upstream, models, wrap=lambda app: with_tasks(app, _trio_tasks), **options)


@pytest.fixture(params=["asyncio", "trio"])
def serve(request: pytest.FixtureRequest) -> Serve:
    return serve_uvicorn if request.param == "asyncio" else serve_hypercorn


def relay_tasks_after(url: str, timeout: float = 5.0) -> list[str]:
    """rawsse's tasks in the relay once they are gone, or as they are at ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        names: list[str] = httpx.get(url + "/tasks", timeout=10).json()
        if not names or time.monotonic() > end:
            return names
        time.sleep(0.02)


# -- disconnects cancel upstream ------------------------------------------------------


def test_leaving_before_upstream_answers_cancels_upstream(
    serve: Serve, scripted: ServerThread
) -> None:
    scripted.expect(Script(head_delay=10))
    with serve(scripted.url, ["test/model"]) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/chat", json=CHAT, timeout=0.3)
        left = time.monotonic()
        assert scripted.wait_disconnect() - left < 0.1
        assert relay_tasks_after(url) == []


def test_leaving_before_the_first_token_cancels_upstream(
    serve: Serve, scripted: ServerThread
) -> None:
    scripted.expect(sse_script(KEEPALIVE, then=[Hang(10)]))
    with serve(scripted.url, ["test/model"]) as url, httpx.Client(timeout=10) as http:
        with http.stream("POST", url + "/chat", json=CHAT) as r:
            assert next(r.iter_raw()) == b": rawsse\n\n"
            left = time.monotonic()
        assert scripted.wait_disconnect() - left < 0.1
        assert relay_tasks_after(url) == []


# -- no task outlives its stream ------------------------------------------------------


def test_no_task_outlives_a_complete_stream(serve: Serve, scripted: ServerThread) -> None:
    body = chunk(content="a") + chunk(content="b", finish="stop") + DONE
    scripted.expect(sse_script(body), sse_script(body))
    with serve(scripted.url, ["test/model"]) as url:
        for _ in range(2):
            response = httpx.post(url + "/chat", json=CHAT, timeout=10)
            events = parse_events(response.content)
            assert [data["text"] for name, data in events if name == "text"] == ["a", "b"]
            assert events[-1][0] == "done"
            assert events[-1][1]["status"] == "complete"
        assert relay_tasks_after(url) == []


def test_no_task_outlives_a_stream_upstream_broke(serve: Serve, scripted: ServerThread) -> None:
    scripted.expect(sse_script(chunk(content="a")))  # the body ends without [DONE]
    with serve(scripted.url, ["test/model"]) as url:
        response = httpx.post(url + "/chat", json=CHAT, timeout=10)
        events = parse_events(response.content)
        assert events[-1][0] == "error"
        assert relay_tasks_after(url) == []


def test_no_task_outlives_a_stalled_browser(serve: Serve, scripted: ServerThread) -> None:
    """A browser that stops reading is dropped at ``write_timeout``; its tasks end."""
    filler = chunk(content="x" * 60_000)
    scripted.expect(sse_script(filler * 40, then=[Hang(10)]))
    with serve(scripted.url, ["test/model"], write_timeout=0.3) as url:
        with httpx.Client(timeout=10) as http, http.stream("POST", url + "/chat", json=CHAT) as r:
            assert next(r.iter_raw())  # then reads nothing more
            started = time.monotonic()
            scripted.wait_disconnect(timeout=10)
            assert time.monotonic() - started < 5
        assert relay_tasks_after(url) == []


# -- a closed stream's objects go at once -----------------------------------------------


async def _stream_twice(client: AsyncClient) -> list[str]:
    """One stream read to its end, one closed after its first event."""
    async with client.stream(model="test/model", messages=CHAT["messages"]) as stream:
        texts = [text async for text in stream.text_stream]
    async with client.stream(model="test/model", messages=CHAT["messages"]) as early:
        await early.__anext__()
    return texts


@pytest.mark.anyio
async def test_a_closed_streams_response_needs_no_cyclic_collection(
    scripted: ServerThread,
) -> None:
    body = chunk(content="a") + chunk(content="b", finish="stop") + DONE
    scripted.expect(sse_script(body), sse_script(chunk(content="a"), then=[Hang(10)]))
    gc.collect()
    gc.disable()
    try:
        async with AsyncClient(base_url=scripted.url, api_key="", retries=0) as client:
            texts = await _stream_twice(client)  # the streams are dropped on return
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            kept = [o for o in gc.garbage if isinstance(o, httpx.Response)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert texts == ["a", "b"]
    assert kept == []
