"""``rawsse.otel`` over real streams from a local server, on sync, asyncio and trio.

Exact names, units and attributes; values equal to what ``stream.metrics``
reports for the same stream; failed, timed-out and cancelled streams carry
``error.type``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from opentelemetry.trace import SpanKind, StatusCode

import rawsse
import rawsse.otel
from rawsse import StreamMetrics, Timeouts

from ..server import (
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
    error_script,
)
from .telemetry import NAMES, SECONDS, Telemetry

MESSAGES = [{"role": "user", "content": "the secret prompt"}]


@pytest.fixture
def telemetry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Telemetry]:
    monkeypatch.delenv(rawsse.otel.CAPTURE_ENV, raising=False)
    t = Telemetry()
    yield t
    t.shutdown()


class Run:
    def __init__(self) -> None:
        self.metrics: StreamMetrics | None = None
        self.error: BaseException | None = None
        self.events = 0


def stream_once(
    mode: str,
    url: str,
    telemetry: Telemetry,
    *,
    stop_after: int | None = None,
    client: dict[str, Any] | None = None,
    **params: Any,
) -> Run:
    """One stream of ``test/model`` on an instrumented client; rawsse errors caught."""
    run = Run()
    kw = {"api_key": KEY, "base_url": url, "retry_delay": 0.01, **(client or {})}
    skw = {"model": "test/model", "messages": MESSAGES, **params}

    def watch(c: Any) -> None:
        rawsse.otel.instrument(
            c, meter_provider=telemetry.meter_provider, tracer_provider=telemetry.tracer_provider
        )

    if mode == "sync":
        with rawsse.Client(**kw) as c:
            watch(c)
            s = c.stream(**skw)
            try:
                with s:
                    for _ in s:
                        run.events += 1
                        if stop_after is not None and run.events >= stop_after:
                            break
            except rawsse.RawSSEError as exc:
                run.error = exc
            run.metrics = s.metrics
        return run

    async def go() -> None:
        async with rawsse.AsyncClient(**kw) as c:
            watch(c)
            s = c.stream(**skw)
            try:
                async with s:
                    async for _ in s:
                        run.events += 1
                        if stop_after is not None and run.events >= stop_after:
                            break
            except rawsse.RawSSEError as exc:
                run.error = exc
            run.metrics = s.metrics

    anyio.run(go, backend=mode)
    return run


def paced() -> Script:
    return Script(
        headers=(("Content-Type", "text/event-stream"), ("X-Generation-Id", "gen-hdr-1")),
        steps=[
            Send(KEEPALIVE),
            Sleep(0.03),
            Send(chunk(content="a")),
            Sleep(0.02),
            Send(chunk(content="b")),
            Sleep(0.02),
            Send(chunk(content="c", finish="stop")),
            Send(chunk(finish="stop", usage=USAGE) + DONE),
        ],
    )


def base(server: ServerThread, *, served: bool = True) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "test/model",
        "server.address": "127.0.0.1",
        "server.port": int(server.url.rsplit(":", 1)[1].split("/")[0]),
    }
    if served:
        attributes["gen_ai.response.model"] = "test/model-2026"
    return attributes


def test_complete_stream(server: ServerThread, mode: str, telemetry: Telemetry) -> None:
    server.expect(paced())
    run = stream_once(mode, server.url, telemetry, max_tokens=50, temperature=0.0)
    m = run.metrics
    assert run.error is None
    assert m is not None
    assert m.ttft is not None
    assert m.total is not None
    found = telemetry.histograms()
    assert {name: unit for name, (unit, _) in found.items()} == NAMES
    attributes = base(server)
    (duration,) = found["gen_ai.client.operation.duration"][1]
    assert dict(duration.attributes or {}) == attributes
    assert (duration.count, duration.sum) == (1, m.total)
    assert list(duration.explicit_bounds) == SECONDS
    (ttfc,) = found["gen_ai.client.operation.time_to_first_chunk"][1]
    assert dict(ttfc.attributes or {}) == attributes
    assert (ttfc.count, ttfc.sum) == (1, m.ttft)
    (per_chunk,) = found["gen_ai.client.operation.time_per_output_chunk"][1]
    assert dict(per_chunk.attributes or {}) == attributes
    # Three chunks with content, 20 ms apart: two gaps, unless a loaded machine read two
    # of them at once (one read, one chunk); the largest is the one stream.metrics has.
    assert per_chunk.count in (1, 2)
    assert per_chunk.max == m.gap_max
    assert 0.0 < per_chunk.min <= per_chunk.max
    tokens = {
        dict(p.attributes or {})["gen_ai.token.type"]: p.sum
        for p in found["gen_ai.client.token.usage"][1]
    }
    assert tokens == {"input": m.prompt_tokens, "output": m.completion_tokens}
    span = telemetry.span()
    assert span.name == "chat test/model"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    span_attributes = dict(span.attributes or {})
    assert {k: span_attributes[k] for k in attributes} == attributes
    assert span_attributes["gen_ai.request.stream"] is True
    assert span_attributes["gen_ai.request.max_tokens"] == 50
    assert span_attributes["gen_ai.request.temperature"] == 0.0
    assert span_attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert span_attributes["gen_ai.response.time_to_first_chunk"] == m.ttft
    assert span_attributes["gen_ai.usage.input_tokens"] == m.prompt_tokens
    assert span_attributes["gen_ai.usage.output_tokens"] == m.completion_tokens
    assert span_attributes["rawsse.attempts"] == 1
    assert span_attributes["rawsse.generation_id"] == "gen-hdr-1"
    assert "error.type" not in span_attributes
    assert not span.events
    text = repr(span.to_json()) + telemetry.reader.get_metrics_data().to_json()  # type: ignore[union-attr]
    assert "secret prompt" not in text
    assert KEY not in text
    # The span runs from the first request to the end: it covers the first content.
    assert span.end_time is not None
    assert span.start_time is not None
    assert m.ttft - 0.01 <= (span.end_time - span.start_time) / 1e9 <= m.total + 0.01


def test_retry_events(server: ServerThread, mode: str, telemetry: Telemetry) -> None:
    server.expect(error_script(503, "busy"), paced())
    run = stream_once(mode, server.url, telemetry)
    assert run.error is None
    span = telemetry.span()
    assert [(e.name, (e.attributes or {}).get("error.type")) for e in span.events] == [
        ("rawsse.retry", "ServiceUnavailableError")
    ]
    assert (span.attributes or {})["rawsse.attempts"] == 2
    (duration,) = telemetry.histograms()["gen_ai.client.operation.duration"][1]
    assert "error.type" not in (duration.attributes or {})


def test_cut_stream(server: ServerThread, mode: str, telemetry: Telemetry) -> None:
    server.expect(Script(steps=[Send(chunk(content="x")), Reset()]))
    run = stream_once(mode, server.url, telemetry)
    assert isinstance(run.error, rawsse.IncompleteStreamError)
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "IncompleteStreamError"
    found = telemetry.histograms()
    (duration,) = found["gen_ai.client.operation.duration"][1]
    assert dict(duration.attributes or {}) == {
        **base(server),
        "error.type": "IncompleteStreamError",
    }
    assert run.metrics is not None
    assert duration.sum == run.metrics.total
    assert "gen_ai.client.token.usage" not in found  # no usage chunk arrived


def test_http_error(server: ServerThread, mode: str, telemetry: Telemetry) -> None:
    server.expect(error_script(400, "bad request"))
    run = stream_once(mode, server.url, telemetry)
    assert isinstance(run.error, rawsse.BadRequestError)
    (duration,) = telemetry.histograms()["gen_ai.client.operation.duration"][1]
    assert dict(duration.attributes or {}) == {
        **base(server, served=False),
        "error.type": "BadRequestError",
    }
    assert set(telemetry.histograms()) == {"gen_ai.client.operation.duration"}
    assert telemetry.span().status.status_code is StatusCode.ERROR


def test_first_token_timeout(server: ServerThread, mode: str, telemetry: Telemetry) -> None:
    server.expect(Script(steps=[Send(KEEPALIVE), Hang()]))
    run = stream_once(
        mode,
        server.url,
        telemetry,
        client={"timeout": Timeouts(first_token=0.2), "retries": 0},
    )
    assert isinstance(run.error, rawsse.FirstTokenTimeout)
    assert (telemetry.span().attributes or {})["error.type"] == "FirstTokenTimeout"


def test_cancelled_stream(server: ServerThread, mode: str, telemetry: Telemetry) -> None:
    server.expect(Script(steps=[Send(chunk(content="x")), Hang()]))
    run = stream_once(mode, server.url, telemetry, stop_after=1)
    assert run.error is None
    assert run.metrics is not None
    assert run.metrics.status == "cancelled"
    span = telemetry.span()
    assert (span.attributes or {})["error.type"] == "cancelled"
    (duration,) = telemetry.histograms()["gen_ai.client.operation.duration"][1]
    assert (duration.attributes or {})["error.type"] == "cancelled"
    assert duration.sum == run.metrics.total


def test_uninstrumented_client_does_not_import_opentelemetry() -> None:
    code = (
        "import sys, rawsse\n"
        "c = rawsse.Client(base_url='http://127.0.0.1:9/v1', api_key='')\n"
        "assert c.observers == ()\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_instrumenting_a_relay_instruments_its_client(telemetry: Telemetry) -> None:
    from rawsse.relay import RelayApp

    client = rawsse.AsyncClient(base_url="http://127.0.0.1:9/api/v1", api_key="")
    relay = RelayApp(client, models=["test/model"])
    observer = rawsse.otel.instrument(relay, telemetry.meter_provider, telemetry.tracer_provider)
    assert client.observers == (observer,)
    rawsse.otel.uninstrument(relay)
    assert client.observers == ()


def complete_plain(mode: str, url: str, telemetry: Telemetry, **client: Any) -> Run:
    """One ``complete(stream=False)`` on an instrumented client; rawsse errors caught."""
    run = Run()
    kw = {"api_key": KEY, "base_url": url, "retry_delay": 0.01, **client}
    skw = {"model": "test/model", "messages": MESSAGES, "stream": False}

    def watch(c: Any) -> None:
        rawsse.otel.instrument(c, telemetry.meter_provider, telemetry.tracer_provider)

    if mode == "sync":
        with rawsse.Client(**kw) as c:
            watch(c)
            try:
                c.complete(**skw)
            except rawsse.RawSSEError as exc:
                run.error = exc
        return run

    async def go() -> None:
        async with rawsse.AsyncClient(**kw) as c:
            watch(c)
            try:
                await c.complete(**skw)
            except rawsse.RawSSEError as exc:
                run.error = exc

    anyio.run(go, backend=mode)
    return run


COMPLETION = {
    "id": "gen-plain-1",
    "object": "chat.completion",
    "model": "test/model-2026",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}
    ],
    "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
}


def test_a_plain_request_is_one_span_and_a_duration(
    server: ServerThread, mode: str, telemetry: Telemetry
) -> None:
    server.expect(
        error_script(503, "busy"),
        Script(
            headers=(("Content-Type", "application/json"),),
            steps=[Send(json.dumps(COMPLETION).encode())],
        ),
    )
    run = complete_plain(mode, server.url, telemetry)
    assert run.error is None
    found = telemetry.histograms()
    # No chunks: the conventions' streaming metrics are not reported.
    assert set(found) == {"gen_ai.client.operation.duration", "gen_ai.client.token.usage"}
    (duration,) = found["gen_ai.client.operation.duration"][1]
    assert dict(duration.attributes or {}) == base(server)
    tokens = {
        dict(p.attributes or {})["gen_ai.token.type"]: p.sum
        for p in found["gen_ai.client.token.usage"][1]
    }
    assert tokens == {"input": 7, "output": 2}
    span = telemetry.span()
    attributes = dict(span.attributes or {})
    assert span.name == "chat test/model"
    assert "gen_ai.request.stream" not in attributes
    assert "gen_ai.response.time_to_first_chunk" not in attributes
    assert attributes["gen_ai.response.id"] == "gen-plain-1"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["rawsse.attempts"] == 2
    assert [e.name for e in span.events] == ["rawsse.retry"]
    assert span.status.status_code is StatusCode.UNSET


def test_a_failed_plain_request(server: ServerThread, mode: str, telemetry: Telemetry) -> None:
    server.expect(error_script(400, "bad request"))
    run = complete_plain(mode, server.url, telemetry)
    assert isinstance(run.error, rawsse.BadRequestError)
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "BadRequestError"
    (duration,) = telemetry.histograms()["gen_ai.client.operation.duration"][1]
    assert (duration.attributes or {})["error.type"] == "BadRequestError"
