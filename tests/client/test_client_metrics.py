"""Per-stream metrics, the ``rawsse.metrics`` log line, and the API key's secrecy."""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

import pytest

import rawsse
from rawsse import StreamMetrics, Timeouts
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
)


def paced() -> Script:
    headers = (("Content-Type", "text/event-stream"), ("X-Generation-Id", "gen-hdr-1"))
    return Script(
        headers=headers,
        steps=[
            Send(KEEPALIVE),
            Sleep(0.06),
            Send(KEEPALIVE),
            Send(chunk(content="a")),
            Sleep(0.03),
            Send(chunk(content="b")),
            Sleep(0.03),
            Send(chunk(content="c", finish="stop")),
            Send(chunk(finish="stop", usage=USAGE) + DONE),
        ],
    )


def test_metrics_fields(server: ServerThread, mode: str) -> None:
    server.expect(paced())
    out = drive(mode, server.url)
    m: StreamMetrics = out.metrics
    assert out.error is None
    assert m.ttfb is not None
    assert m.ttft is not None
    assert m.total is not None
    assert m.ttfb + 0.05 < m.ttft  # the first keep-alive came at once
    assert 0.06 <= m.ttft < 1.0  # content, not keep-alives
    assert m.total >= m.ttft + 0.06
    assert m.attempts == 1
    assert m.status == "complete"
    assert (m.model, m.provider, m.generation_id) == (
        "test/model-2026",
        "TestProvider",
        "gen-hdr-1",
    )
    assert (m.content_events, m.keepalives) == (3, 2)
    assert m.bytes_received == sum(len(s.data) for s in paced().steps if isinstance(s, Send))
    assert m.gap_p50 is not None
    assert m.gap_max is not None
    assert m.gap_p95 is not None
    assert 0 < m.gap_p50 <= m.gap_p95 <= m.gap_max < 1.0
    assert m.gap_max >= 0.025  # the 30 ms pauses, not the keep-alives' spacing
    assert (m.prompt_tokens, m.completion_tokens, m.cost) == (10, 4, 0.00012)
    assert m.tokens_per_second is not None
    assert 0 < m.tokens_per_second <= 4 / 0.055  # 4 tokens over >= 2 gaps of 30 ms


def test_metrics_before_the_end(server: ServerThread) -> None:
    server.expect(Script(steps=[Send(KEEPALIVE), Hang()]))
    with (
        rawsse.Client(base_url=server.url, api_key=KEY) as c,
        c.stream(model="m", messages=[]) as s,
    ):
        assert s.metrics.ttft is None
        assert s.metrics.total is None
        assert s.metrics.status is None
        assert s.metrics.attempts == 1
        for _ in s:
            break
    assert s.metrics.status == "cancelled"


def test_on_metrics_and_log_line(
    server: ServerThread, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[StreamMetrics] = []
    caplog.set_level(logging.INFO, logger="rawsse.metrics")
    server.expect(paced())
    out = drive(mode, server.url, client={"on_metrics": got.append})
    assert got == [out.metrics]
    (record,) = [r for r in caplog.records if r.name == "rawsse.metrics"]
    line = record.getMessage()
    assert line.startswith("stream ")
    fields = dict(part.split("=", 1) for part in line.split()[1:])
    assert json.loads(fields["status"]) == "complete"
    assert json.loads(fields["model"]) == "test/model-2026"
    assert json.loads(fields["attempts"]) == 1
    assert abs(json.loads(fields["ttft"]) - got[0].ttft) < 1e-5
    assert "gap_p50" in fields


def test_on_metrics_on_errors(server: ServerThread, mode: str) -> None:
    got: list[StreamMetrics] = []
    server.expect(Script(steps=[Send(chunk(content="x")), Reset()]))
    out = drive(mode, server.url, client={"on_metrics": got.append})
    assert isinstance(out.error, rawsse.IncompleteStreamError)
    assert [m.status for m in got] == ["truncated"]
    assert got[0].content_events == 1


# -- the API key never leaks ----------------------------------------------------------


def leak_scenarios() -> list[tuple[Script, dict[str, Any]]]:
    err = '{"error":{"code":401,"message":"User not found."}}'
    return [
        (error_script(401, err), {}),
        (error_script(429, '{"error":{"code":429,"message":"x"}}'), {"retries": 0}),
        (Script(steps=[Send(chunk(content="x")), Reset()]), {}),
        (
            Script(steps=[Send(KEEPALIVE), Hang()]),
            {"timeout": Timeouts(first_token=0.05), "retries": 0},
        ),
        (Script(steps=[Send(chunk(error={"code": 502, "message": "boom"}) + DONE)]), {}),
        (Script(headers=(("Content-Type", "text/html"),), steps=[Send(b"<html/>")]), {}),
    ]


@pytest.mark.parametrize("case", range(len(leak_scenarios())))
def test_api_key_never_appears(
    server: ServerThread, mode: str, case: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    script, client = leak_scenarios()[case]
    got: list[StreamMetrics] = []
    server.expect(script)
    out = drive(mode, server.url, client={**client, "on_metrics": got.append})
    assert out.error is not None
    texts = [
        str(out.error),
        repr(out.error),
        "".join(traceback.format_exception(out.error)),
        repr(vars(out.error)),
        caplog.text,
        repr(got),
        json.dumps([m.as_dict() for m in got]),
        repr(out.result),
    ]
    for text in texts:
        assert KEY not in text
        assert KEY[10:30] not in text
    assert server.exchanges[0].headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("cls", [rawsse.Client, rawsse.AsyncClient])
def test_client_repr_hides_the_key(cls: type[Any]) -> None:
    client = cls(api_key=KEY)
    assert KEY not in repr(client)
    assert KEY not in str(client)
    assert "openrouter.ai" in repr(client)


def test_timeouts_table_defaults() -> None:
    t = Timeouts()
    assert (t.connect, t.first_token, t.idle, t.stall, t.total) == (10.0, 60.0, 30.0, 60.0, 120.0)


def test_usage_tokens_per_second_needs_usage(server: ServerThread) -> None:
    server.expect(Script(steps=[Send(chunk(content="a", finish="stop") + DONE)]))
    out = drive("sync", server.url)
    assert out.metrics.tokens_per_second is None
    assert out.metrics.completion_tokens is None
    assert out.metrics.status == "complete"
