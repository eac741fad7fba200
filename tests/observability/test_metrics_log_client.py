"""``MetricsLog`` as a client's ``on_metrics`` over real streams: what each stream records."""

from __future__ import annotations

import json
from pathlib import Path

import rawsse
from rawsse import MetricsLog

from ..server import (
    DONE,
    KEEPALIVE,
    USAGE,
    Reset,
    Script,
    Send,
    ServerThread,
    chunk,
    drive,
    error_script,
)


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_one_line_per_stream_equal_to_stream_metrics(
    server: ServerThread, mode: str, tmp_path: Path
) -> None:
    path = tmp_path / "metrics.jsonl"
    server.expect(
        Script(
            headers=(("Content-Type", "text/event-stream"), ("X-Generation-Id", "gen-hdr-1")),
            steps=[
                Send(KEEPALIVE),
                Send(chunk(content="a")),
                Send(chunk(content="b", finish="stop")),
                Send(chunk(finish="stop", usage=USAGE) + DONE),
            ],
        )
    )
    with MetricsLog(path) as log:
        out = drive(mode, server.url, client={"on_metrics": log})
    m = out.metrics
    assert out.error is None
    (record,) = records(path)
    assert record["model"] == "test/model"  # as requested
    assert record["served_model"] == "test/model-2026"
    assert m.request_model == "test/model"
    assert record["status"] == "complete"
    assert record["error_type"] is None
    assert record["ttft"] == round(m.ttft, 6)
    assert record["total"] == round(m.total, 6)
    assert (record["tokens_in"], record["tokens_out"], record["cost"]) == (10, 4, 0.00012)
    assert (record["attempts"], record["continuations"]) == (1, 0)
    assert record["generation_id"] == "gen-hdr-1"


def test_failures_record_their_error_type(server: ServerThread, mode: str, tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    server.expect(Script(steps=[Send(chunk(content="x")), Reset()]), error_script(400, "no"))
    with MetricsLog(path) as log:
        cut = drive(mode, server.url, client={"on_metrics": log})
        refused = drive(mode, server.url, client={"on_metrics": log, "retries": 0})
    assert isinstance(cut.error, rawsse.IncompleteStreamError)
    assert isinstance(refused.error, rawsse.BadRequestError)
    assert cut.metrics.error_type == "IncompleteStreamError"
    assert [(r["status"], r["error_type"]) for r in records(path)] == [
        ("truncated", "IncompleteStreamError"),
        ("error", "BadRequestError"),
    ]


def test_a_cancelled_stream_has_no_error_type(
    server: ServerThread, mode: str, tmp_path: Path
) -> None:
    path = tmp_path / "metrics.jsonl"
    server.expect(Script(steps=[Send(chunk(content="x")), Send(chunk(content="y"))]))
    with MetricsLog(path) as log:
        drive(mode, server.url, client={"on_metrics": log}, stop_after=1)
    (record,) = records(path)
    assert (record["status"], record["error_type"]) == ("cancelled", None)
