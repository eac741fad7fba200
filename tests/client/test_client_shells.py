"""The two clients share their settings, requests and decisions (``BaseClient``,
``StreamShell``, ``StreamCore``); what each shell still does on its own is its I/O.
These pin what the sharing must not change, over real TCP."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import httpx
import pytest

import rawsse
from tests import server as fx
from tests.server import ServerThread

BODY = fx.chunk(content="Hi", finish="stop", usage=fx.USAGE) + fx.DONE


@pytest.mark.parametrize("cls", [rawsse.Client, rawsse.AsyncClient])
def test_both_clients_take_the_same_arguments(cls: type) -> None:
    params = inspect.signature(cls).parameters
    assert list(params) == [
        "api_key",
        "base_url",
        "app_url",
        "app_title",
        "timeout",
        "retries",
        "http_client",
        "headers",
        "in_band_error",
        "on_metrics",
        "retry_delay",
        "max_retry_delay",
        "record_to",
        "resume",
        "body_limits",
        "limits",
    ]
    assert all(p.kind is p.KEYWORD_ONLY for p in params.values())
    stream = inspect.signature(cls.stream).parameters
    assert list(stream)[1:3] == ["model", "messages"]
    complete = inspect.signature(cls.complete).parameters
    assert list(complete) == [*list(stream)[:3], "stream", *list(stream)[3:]]


@pytest.mark.parametrize(
    ("cls", "http"), [(rawsse.Client, httpx.Client), (rawsse.AsyncClient, httpx.AsyncClient)]
)
def test_record_to_cannot_wrap_a_callers_pool(cls: type, http: type, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="record_to cannot wrap"):
        cls(base_url="http://127.0.0.1:9/v1", http_client=http(), record_to=tmp_path)


def test_an_async_complete_made_outside_the_loop_runs_inside_it(server: ServerThread) -> None:
    # ``asyncio.run(client.complete(...))``: nothing may read the loop's clock before
    # the coroutine runs.
    server.expect(fx.Script(steps=[fx.Send(BODY)]))
    client = rawsse.AsyncClient(api_key=fx.KEY, base_url=server.url)
    pending = client.complete(model="m", messages=fx.MESSAGES)
    result = asyncio.run(pending)
    assert (result.text, result.status) == ("Hi", rawsse.ChatStatus.COMPLETE)
    asyncio.run(client.aclose())
