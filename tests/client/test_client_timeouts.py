"""Timeouts, cancellation and retries over real TCP, with the server timing the disconnect.

Limits are tens of milliseconds so the suite stays fast; each test runs on the
sync client and the async client under asyncio and trio.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import httpx
import pytest

import rawsse
from rawsse import ChatStatus, KeepAlive, Timeouts, parse_chat_stream
from tests.server import (
    DONE,
    KEEPALIVE,
    KEY,
    USAGE,
    Hang,
    Reset,
    Script,
    Send,
    ServerThread,
    Sleep,
    chunk,
    drive,
    error_script,
    running_server,
    sse_script,
)

DISCONNECT_WITHIN = 0.1  # seconds: the server must see the client leave this fast
FAST = {"retry_delay": 0.001, "max_retry_delay": 0.005}


def limits(**kwargs: float | None) -> Timeouts:
    base: dict[str, float | None] = {
        "connect": 2.0,
        "first_token": 2.0,
        "idle": 2.0,
        "stall": 2.0,
        "total": 5.0,
    }
    base.update(kwargs)
    return Timeouts(**base)


def keepalives(every: float, count: int) -> list[Any]:
    steps: list[Any] = []
    for _ in range(count):
        steps += [Send(KEEPALIVE), Sleep(every)]
    return steps


def assert_disconnect(server: ServerThread, after: float) -> None:
    seen = server.wait_disconnect()
    assert seen - after < DISCONNECT_WITHIN, f"disconnect seen {seen - after:.3f} s late"


async def drain(stream: rawsse.AsyncStream) -> None:
    async with stream:
        async for _ in stream:
            pass


# -- the four clocks ----------------------------------------------------------------


def test_timeouts_validate() -> None:
    assert Timeouts() == Timeouts(
        connect=10.0, first_token=60.0, idle=30.0, stall=60.0, total=120.0
    )
    with pytest.raises(ValueError, match="idle"):
        Timeouts(idle=0)
    with pytest.raises(ValueError, match="total"):
        Timeouts(total=-1.0)


def test_first_token_timeout_while_keepalives_flow(server: ServerThread, mode: str) -> None:
    server.expect(Script(steps=keepalives(0.01, 200)))
    # 0.3 s, not less: on a fresh process the head alone can take most of 0.1 s, and the
    # keep-alives must have begun to flow before the limit for this test to mean anything.
    out = drive(mode, server.url, client={"timeout": limits(first_token=0.3), "retries": 0})
    err = out.error
    assert isinstance(err, rawsse.FirstTokenTimeout)
    assert err.timeout == 0.3
    assert 0.3 <= out.ended - out.started < 1.0
    assert out.events
    assert all(type(e) is KeepAlive for e in out.events)
    assert err.partial is out.result
    assert err.partial.status is ChatStatus.TIMED_OUT
    assert out.metrics.status == "timed_out"
    assert_disconnect(server, out.ended)


def test_first_token_timeout_before_headers(server: ServerThread, mode: str) -> None:
    script = Script(head_delay=1.0, steps=[Send(chunk(content="late"))])
    server.expect(script)
    out = drive(mode, server.url, client={"timeout": limits(first_token=0.08), "retries": 0})
    assert isinstance(out.error, rawsse.FirstTokenTimeout)
    assert out.ended - out.started < 0.5
    assert_disconnect(server, out.ended)


def test_idle_timeout(server: ServerThread, mode: str) -> None:
    server.expect(Script(steps=[Send(chunk(content="Hi")), Hang()]))
    out = drive(mode, server.url, client={"timeout": limits(idle=0.06), "retries": 0})
    err = out.error
    assert isinstance(err, rawsse.IdleTimeout)
    assert err.timeout == 0.06
    assert 0.06 <= out.ended - out.started < 0.5
    assert err.partial is not None
    assert err.partial.text == "Hi"
    assert err.partial.status is ChatStatus.TIMED_OUT
    assert_disconnect(server, out.ended)


def test_stall_timeout_counts_content_not_keepalives(server: ServerThread, mode: str) -> None:
    server.expect(Script(steps=[Send(chunk(content="Hi")), *keepalives(0.01, 200)]))
    # The keep-alives (every 10 ms) hold off the idle clock (150 ms) but not the stall one.
    out = drive(mode, server.url, client={"timeout": limits(stall=0.3, idle=0.15), "retries": 0})
    err = out.error
    assert isinstance(err, rawsse.StallTimeout)
    assert err.timeout == 0.3
    assert 0.3 <= out.ended - out.started < 1.5
    assert err.partial is not None
    assert err.partial.text == "Hi"
    assert sum(type(e) is KeepAlive for e in out.events) >= 3
    assert_disconnect(server, out.ended)


def test_total_timeout(server: ServerThread, mode: str) -> None:
    steps: list[Any] = []
    for i in range(100):
        steps += [Send(chunk(content=str(i % 10))), Sleep(0.01)]
    server.expect(Script(steps=steps))
    out = drive(mode, server.url, client={"timeout": limits(total=0.1), "retries": 0})
    err = out.error
    assert isinstance(err, rawsse.TotalTimeout)
    assert 0.1 <= out.ended - out.started < 0.5
    assert err.partial is not None
    assert err.partial.text
    assert err.partial.status is ChatStatus.TIMED_OUT
    assert_disconnect(server, out.ended)


def test_keepalives_keep_the_idle_clock_alive(server: ServerThread, mode: str) -> None:
    body = chunk(content="done", finish="stop", usage=USAGE) + DONE
    server.expect(Script(steps=[*keepalives(0.05, 10), Send(body)]))  # 0.5 s in all
    out = drive(mode, server.url, client={"timeout": limits(idle=0.25, first_token=2.0)})
    assert out.error is None
    assert out.result.text == "done"
    assert out.metrics.keepalives == 10


def test_slow_consumer_is_not_the_servers_silence() -> None:
    # Bytes that arrived while the caller was busy are progress, not an idle gap.
    body = chunk(content="a") + chunk(content="b", finish="stop", usage=USAGE) + DONE
    with running_server() as srv:
        srv.expect(sse_script(body, splits=[len(chunk(content="a"))]))
        with rawsse.Client(base_url=srv.url, api_key=KEY, timeout=limits(idle=0.05)) as c:
            with c.stream(model="m", messages=[]) as s:
                for _ in s:
                    time.sleep(0.1)
            assert s.result.text == "ab"


def test_connect_errors_are_translated_and_retried(mode: str) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        raise httpx.ConnectTimeout("timed out", request=request)

    transport = httpx.MockTransport(handler)
    kwargs: dict[str, Any] = {
        "base_url": "http://mock.test/v1",
        "api_key": KEY,
        "retries": 2,
        **FAST,
    }
    if mode == "sync":
        http = httpx.Client(transport=transport)
        with (
            rawsse.Client(http_client=http, **kwargs) as c,
            pytest.raises(rawsse.ConnectTimeout) as info,
            c.stream(model="m", messages=[]),
        ):
            pass
        assert isinstance(info.value.__cause__, httpx.ConnectTimeout)
        http.close()
    else:

        async def main() -> None:
            http = httpx.AsyncClient(transport=transport)
            async with rawsse.AsyncClient(http_client=http, **kwargs) as c:
                with pytest.raises(rawsse.ConnectTimeout) as info:
                    async with c.stream(model="m", messages=[]):
                        pass
                assert isinstance(info.value.__cause__, httpx.ConnectTimeout)
            await http.aclose()

        anyio.run(main, backend=mode)
    assert calls == ["/v1/chat/completions"] * 3


# -- cancellation -------------------------------------------------------------------


def cancel_body() -> bytes:
    return chunk(content="Hello") + chunk(content=" there", usage=USAGE)


def test_break_closes_the_connection_at_once(server: ServerThread, mode: str) -> None:
    head = cancel_body()
    server.expect(Script(steps=[Send(head), Hang()]))
    n = len(parse_chat_stream(head))
    out = drive(mode, server.url, stop_after=n)
    assert out.error is None
    assert out.stopped is not None
    assert out.result.status is ChatStatus.CANCELLED
    assert out.result.text == "Hello there"
    assert out.result.usage is not None
    assert out.result.usage.completion_tokens == 4
    assert out.metrics.status == "cancelled"
    assert_disconnect(server, out.stopped)


def test_sync_break_alone_closes(server: ServerThread) -> None:
    server.expect(Script(steps=[Send(cancel_body()), Hang()]))
    with (
        rawsse.Client(base_url=server.url, api_key=KEY) as c,
        c.stream(model="m", messages=[]) as s,
    ):
        for _ in s:
            break
        broke = time.monotonic()
        assert_disconnect(server, broke)  # still inside the with block
        assert s.result.status is ChatStatus.CANCELLED


def test_close_from_inside_the_loop(server: ServerThread) -> None:
    server.expect(Script(steps=[Send(cancel_body()), Hang()]))
    with (
        rawsse.Client(base_url=server.url, api_key=KEY) as c,
        c.stream(model="m", messages=[]) as s,
    ):
        for _ in s:
            s.close()
            closed = time.monotonic()
            assert_disconnect(server, closed)
        assert s.result.status is ChatStatus.CANCELLED


@pytest.mark.anyio
async def test_async_close_and_leaving_the_block(server: ServerThread) -> None:
    server.expect(Script(steps=[Send(cancel_body()), Hang()]))
    async with rawsse.AsyncClient(base_url=server.url, api_key=KEY) as c:
        async with c.stream(model="m", messages=[]) as s:
            async for _ in s:
                await s.close()
                closed = time.monotonic()
                break
        assert_disconnect(server, closed)
        assert s.result.status is ChatStatus.CANCELLED
        assert s.result.text == "Hello there"  # both chunks came in one read


@pytest.mark.anyio
async def test_task_cancellation(server: ServerThread) -> None:
    server.expect(Script(steps=[Send(cancel_body()), Hang()]))
    seen: list[Any] = []
    async with rawsse.AsyncClient(base_url=server.url, api_key=KEY) as c:
        s = c.stream(model="m", messages=[])
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                async with s:
                    async for event in s:  # a loop: the events must survive the cancel
                        seen.append(event)  # noqa: PERF401

            tg.start_soon(consume)
            await anyio.sleep(0.1)
            tg.cancel_scope.cancel()
            cancelled = time.monotonic()
        assert_disconnect(server, cancelled)
    assert s.result.status is ChatStatus.CANCELLED
    assert s.result.text == "Hello there"
    assert s.result.usage is not None
    assert seen == parse_chat_stream(cancel_body())


@pytest.mark.anyio
async def test_outer_deadline_cancels(server: ServerThread) -> None:
    server.expect(Script(steps=[Send(cancel_body()), Hang()]))
    async with rawsse.AsyncClient(base_url=server.url, api_key=KEY) as c:
        with anyio.move_on_after(0.08):
            async with c.stream(model="m", messages=[]) as s:
                async for _ in s:
                    pass
        left = time.monotonic()
        assert_disconnect(server, left)
        assert s.result.status is ChatStatus.CANCELLED


# -- retries ------------------------------------------------------------------------


def ok_body() -> bytes:
    return chunk(content="ok", finish="stop", usage=USAGE) + DONE


def test_retry_after_429(server: ServerThread, mode: str) -> None:
    server.expect(
        error_script(
            429, '{"error":{"code":429,"message":"slow down"}}', headers={"Retry-After": "0.05"}
        ),
        sse_script(ok_body()),
    )
    out = drive(mode, server.url, client=FAST)
    assert out.error is None
    assert out.result.text == "ok"
    assert out.metrics.attempts == 2
    first, second = server.exchanges
    assert second.received_at - first.received_at >= 0.05


@pytest.mark.parametrize("status", [408, 500, 502, 503])
def test_retried_statuses(server: ServerThread, mode: str, status: int) -> None:
    err = error_script(status, f'{{"error":{{"code":{status},"message":"x"}}}}')
    server.expect(err, err, sse_script(ok_body()))
    out = drive(mode, server.url, client={"retries": 2, **FAST})
    assert out.error is None
    assert out.metrics.attempts == 3
    server.expect(err, err, sse_script(ok_body()))
    out = drive(mode, server.url, client={"retries": 1, **FAST})
    assert isinstance(out.error, rawsse.APIStatusError)
    assert out.error.status == status
    assert len(server.exchanges) == 2


def test_not_retried_statuses(server: ServerThread, mode: str) -> None:
    server.expect(
        error_script(400, '{"error":{"code":400,"message":"bad"}}'), sse_script(ok_body())
    )
    out = drive(mode, server.url, client=FAST)
    assert isinstance(out.error, rawsse.BadRequestError)
    assert len(server.exchanges) == 1


def test_long_retry_after_is_not_waited(server: ServerThread, mode: str) -> None:
    server.expect(
        error_script(429, '{"error":{"code":429,"message":"x"}}', headers={"Retry-After": "3600"}),
        sse_script(ok_body()),
    )
    out = drive(mode, server.url, client=FAST)
    assert isinstance(out.error, rawsse.RateLimitError)
    assert out.error.retry_after == 3600.0
    assert out.ended - out.started < 1.0


def test_first_token_timeout_is_retried(server: ServerThread, mode: str) -> None:
    server.expect(Script(steps=[Send(KEEPALIVE), Hang()]), sse_script(ok_body()))
    out = drive(mode, server.url, client={"timeout": limits(first_token=0.2), **FAST})
    assert out.error is None
    assert out.result.text == "ok"
    assert out.result.status is ChatStatus.COMPLETE
    assert out.metrics.attempts == 2
    assert out.events[0] == KeepAlive("OPENROUTER PROCESSING")  # from the first attempt
    assert server.exchanges[0].disconnected_at is not None


def test_idle_timeout_before_content_is_retried(server: ServerThread, mode: str) -> None:
    server.expect(Script(steps=[Hang()]), sse_script(ok_body()))
    out = drive(mode, server.url, client={"timeout": limits(idle=0.2), **FAST})
    assert out.error is None
    assert out.metrics.attempts == 2


def test_never_retried_after_content(server: ServerThread, mode: str) -> None:
    server.expect(Script(steps=[Send(chunk(content="partial")), Hang()]), sse_script(ok_body()))
    out = drive(mode, server.url, client={"timeout": limits(idle=0.05), **FAST})
    assert isinstance(out.error, rawsse.IdleTimeout)
    assert out.error.partial is not None
    assert out.error.partial.text == "partial"
    assert len(server.exchanges) == 1
    server.expect(Script(steps=[Send(chunk(content="partial")), Reset()]), sse_script(ok_body()))
    out = drive(mode, server.url, client=FAST)
    assert isinstance(out.error, rawsse.IncompleteStreamError)
    assert len(server.exchanges) == 1


def test_retries_stop_at_the_total_budget(server: ServerThread, mode: str) -> None:
    err = error_script(503, '{"error":{"code":503,"message":"x"}}', headers={"Retry-After": "0.2"})
    server.expect(err, sse_script(ok_body()))
    out = drive(mode, server.url, client={"timeout": limits(total=0.1), **FAST})
    assert isinstance(out.error, rawsse.ServiceUnavailableError)
    assert len(server.exchanges) == 1


def test_own_http_client_still_gets_every_clock(server: ServerThread, mode: str) -> None:
    # With a caller's httpx client the sync shell checks the content clocks as bytes
    # arrive (keep-alives every 10 ms here); the async shell's cancel scopes apply as ever.
    server.expect(Script(steps=[Send(chunk(content="Hi")), *keepalives(0.01, 200)]))
    kwargs: dict[str, Any] = {
        "base_url": server.url,
        "api_key": KEY,
        "timeout": limits(stall=0.08),
        "retries": 0,
    }
    if mode == "sync":
        http = httpx.Client()
        with rawsse.Client(http_client=http, **kwargs) as c:
            started = time.monotonic()
            with pytest.raises(rawsse.StallTimeout), c.stream(model="m", messages=[]) as s:
                for _ in s:
                    pass
        http.close()
    else:

        async def main() -> Any:
            async with (
                httpx.AsyncClient() as http,
                rawsse.AsyncClient(http_client=http, **kwargs) as c,
            ):
                s = c.stream(model="m", messages=[])
                with pytest.raises(rawsse.StallTimeout):
                    await drain(s)
            return s

        started = time.monotonic()
        s = anyio.run(main, backend=mode)
    assert 0.08 <= time.monotonic() - started < 0.5
    assert s.result.status is ChatStatus.TIMED_OUT
    assert_disconnect(server, time.monotonic())
