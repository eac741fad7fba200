"""Resume against the scripted server: the continuation request, its failures,
cancellation during it, metrics, and the client-level switches."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from rawsse import (
    AsyncClient,
    BadRequestError,
    ChatStatus,
    ContinuationError,
    Continued,
    IncompleteStreamError,
    Resume,
    StreamMetrics,
    TextDelta,
)
from tests.server import (
    DONE,
    KEY,
    MESSAGES,
    USAGE,
    Hang,
    Reset,
    Script,
    ServerThread,
    Sleep,
    chunk,
    drive,
    error_script,
    sse_script,
)

HEAD = chunk(content="Hello")
CUT = sse_script(HEAD + chunk(content=" wor"), then=[Reset()])
REST = sse_script(
    chunk(content="world", id="gen-2")  # repeats "wor" (a seam quirk)
    + chunk(content="!", id="gen-2")
    + chunk(finish="stop", usage=USAGE, id="gen-2")
    + DONE
)


def texts(events: list[Any]) -> str:
    return "".join(e.text for e in events if type(e) is TextDelta)


def test_the_continuation_request(server: ServerThread, mode: str) -> None:
    server.expect(CUT, REST)
    out = drive(mode, server.url, client={"resume": Resume()}, stream={"temperature": 0})
    assert out.error is None
    assert texts(out.events) == "Hello world!"
    (seam,) = [e for e in out.events if type(e) is Continued]
    assert (seam.index, seam.reason, seam.attempt) == (0, "cut", 1)
    assert "mid-stream" in seam.detail
    first, second = server.exchanges
    assert second.json() == {
        **first.json(),
        "messages": [*MESSAGES, {"role": "assistant", "content": "Hello wor"}],
    }
    assert int(second.headers["content-length"]) == len(second.body)
    assert second.headers["authorization"] == first.headers["authorization"]
    assert out.result.status is ChatStatus.COMPLETE
    assert out.result.id == "gen-test-1"  # the stream's, from its first request


def test_resume_per_call_overrides_the_clients(server: ServerThread, mode: str) -> None:
    server.expect(CUT, REST)
    out = drive(mode, server.url, client={"resume": Resume()}, stream={"resume": False})
    assert isinstance(out.error, IncompleteStreamError)
    assert len(server.exchanges) == 1
    server.expect(CUT, REST)
    out = drive(mode, server.url, stream={"resume": True})
    assert out.error is None
    assert texts(out.events) == "Hello world!"


def test_complete_joins_the_parts(server: ServerThread, mode: str) -> None:
    server.expect(CUT, REST)
    out = drive(mode, server.url, client={"resume": Resume()}, how="complete")
    assert out.error is None
    assert out.result.text == "Hello world!"


def test_a_refused_continuation_raises_a_continuation_error(
    server: ServerThread, mode: str
) -> None:
    refused = error_script(400, '{"error":{"code":400,"message":"prefill is not supported"}}')
    server.expect(CUT, refused)
    out = drive(mode, server.url, client={"resume": Resume(), "retries": 0})
    assert isinstance(out.error, ContinuationError)
    assert isinstance(out.error.__cause__, BadRequestError)
    assert "prefill is not supported" in str(out.error)
    assert out.error.partial is not None
    assert out.error.partial.text == "Hello wor"
    assert out.error.partial.status is ChatStatus.ERROR


def test_a_continuation_request_is_retried_before_its_first_token(
    server: ServerThread, mode: str
) -> None:
    busy = error_script(503, '{"error":{"code":503,"message":"busy"}}')
    server.expect(CUT, busy, REST)
    out = drive(mode, server.url, client={"resume": Resume(), "retries": 1, "retry_delay": 0.01})
    assert out.error is None
    assert texts(out.events) == "Hello world!"
    metrics: StreamMetrics = out.metrics
    assert metrics.continuations == 1
    assert [p.attempts for p in metrics.parts] == [1, 2]
    assert metrics.attempts == 3


def test_metrics_keep_each_request(server: ServerThread, mode: str) -> None:
    seen: list[StreamMetrics] = []
    server.expect(CUT, REST)
    out = drive(mode, server.url, client={"resume": Resume(), "on_metrics": seen.append})
    assert out.error is None
    (metrics,) = seen
    assert metrics.continuations == 1
    assert len(metrics.parts) == 2
    assert metrics.parts[0].status == "truncated"
    assert metrics.parts[1].status == "complete"
    assert all(p.ttft is not None for p in metrics.parts)
    assert metrics.ttft == metrics.parts[0].ttft
    assert metrics.cost == USAGE["cost"]
    assert metrics.status == "complete"
    assert "continuations=1" in metrics.log_line()
    assert "parts" not in metrics.log_line()


# -- cancellation during a continuation ------------------------------------------------


def test_breaking_out_during_a_continuation_disconnects_at_once(
    server: ServerThread, mode: str
) -> None:
    slow = sse_script(chunk(content="world", id="gen-2"), then=[Hang()])
    server.expect(CUT, slow)
    out = drive(mode, server.url, client={"resume": Resume()}, stop_after=6)
    assert texts(out.events) == "Hello world"
    assert out.stopped is not None
    assert server.wait_disconnect(1) - out.stopped < 0.1
    assert out.result.status is ChatStatus.CANCELLED


@pytest.mark.anyio
async def test_cancelling_the_task_while_a_continuation_waits_disconnects_at_once(
    server: ServerThread,
) -> None:
    waiting = Script(steps=[Sleep(0.01), Hang()])  # the head, then nothing
    server.expect(CUT, waiting)
    seen: list[Any] = []
    continued = anyio.Event()
    async with AsyncClient(api_key=KEY, base_url=server.url, resume=Resume()) as client:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def consume() -> None:
                    async with client.stream(model="m", messages=MESSAGES) as stream:
                        async for event in stream:
                            seen.append(event)
                            if type(event) is Continued:
                                continued.set()

                tg.start_soon(consume)
                await continued.wait()
                await anyio.sleep(0.1)  # the continuation is waiting for its first byte
                cancelled = time.monotonic()
                scope.cancel()
    assert server.wait_disconnect(1) - cancelled < 0.1
    assert texts(seen) == "Hello wor"
