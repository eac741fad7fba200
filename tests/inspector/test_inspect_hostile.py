"""The inspector on hostile bodies: linear, never raising, reporting lone surrogates, writable."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import rawsse
from rawsse.inspect import ANOMALY_KINDS, inspect_stream, render_html_report

SRC = str(Path(rawsse.__file__).parent)


def _chunk(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _finishing_choices(n: int) -> bytes:
    """n choices, each with a token and then its finish reason, one event each."""
    events = []
    for i in range(n):
        delta = {"index": i, "delta": {"content": "x"}, "finish_reason": None}
        events.append(_chunk({"id": "a", "choices": [delta]}))
        finish = {"index": i, "delta": {}, "finish_reason": "stop"}
        events.append(_chunk({"id": "a", "choices": [finish]}))
    return b"".join(events) + b"data: [DONE]\n\n"


def _lines_run(work: Callable[[], object]) -> int:
    """How many lines of rawsse's own code ``work()`` runs (a count, not a clock)."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        if not frame.f_code.co_filename.startswith(SRC):
            return None
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        work()
    finally:
        sys.settrace(None)
    return count


def test_many_finishing_choices_cost_linear_work() -> None:
    small, large = _finishing_choices(200), _finishing_choices(400)
    lines_small = _lines_run(lambda: inspect_stream(small))
    lines_large = _lines_run(lambda: inspect_stream(large))
    # Linear: twice the input, about twice the lines (it was 2.7 and growing: quadratic).
    assert lines_large / lines_small < 2.3, (lines_small, lines_large)


def test_the_quadratic_case_still_reports_content_after_finish() -> None:
    body = _finishing_choices(3).replace(b"data: [DONE]", b"")
    late = _chunk({"id": "a", "choices": [{"index": 1, "delta": {"content": "late"}}]})
    report = inspect_stream(body + late + b"data: [DONE]\n\n")
    assert report.anomaly_kinds().count("content_after_finish") == 1
    assert "choice 1 got content after its finish reason" in [a.message for a in report.anomalies]


def test_a_token_in_the_finishing_event_is_not_after_the_finish() -> None:
    both = _chunk(
        {"id": "a", "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "stop"}]}
    )
    report = inspect_stream(both + b"data: [DONE]\n\n")
    assert "content_after_finish" not in report.anomaly_kinds()


def test_a_50000_deep_payload_is_reported_not_raised() -> None:
    deep = b"data: " + b"[" * 50_000 + b"]" * 50_000 + b"\n\n"
    report = inspect_stream(deep + b"data: [DONE]\n\n")
    assert "malformed_chunk" in report.anomaly_kinds() or "invalid_json" in report.anomaly_kinds()
    json.dumps(report.to_dict())
    render_html_report(report)


def test_a_deep_error_body_is_reported_not_raised() -> None:
    body = b'{"error": {"message": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}"
    report = inspect_stream(body, http_status=500)
    assert report.anomaly_kinds() == ["http_error"]
    assert report.anomalies[0].message.startswith("HTTP 500: ")


def test_deep_tool_arguments_are_reported_not_raised() -> None:
    call = {"index": 0, "id": "c", "function": {"name": "f", "arguments": "[" * 50_000}}
    first = {"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}
    more = {"index": 0, "function": {"arguments": "]" * 50_000}}
    second = {"index": 0, "delta": {"tool_calls": [more]}, "finish_reason": "tool_calls"}
    body = _chunk({"id": "a", "choices": [first]}) + _chunk({"id": "a", "choices": [second]})
    report = inspect_stream(body + b"data: [DONE]\n\n")
    assert "invalid_tool_arguments" in report.anomaly_kinds()


def _surrogate_stream() -> bytes:
    lone = b'data: {"id":"a","choices":[{"index":0,"delta":{"content":"x\\ud83d"}}]}\n\n'
    more = b'data: {"id":"a","choices":[{"index":0,"delta":{"content":"y"}}]}\n\n'
    # A lone surrogate in a field kept verbatim (an extra, unknown field).
    extra = (
        b'data: {"id":"a","odd":"\\udead","choices":[{"index":0,"delta":{"x_new":"\\ud800"}}]}\n\n'
    )
    finish = b'data: {"id":"a","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    return lone + more + extra + finish + b"data: [DONE]\n\n"


def test_a_lone_surrogate_is_an_anomaly() -> None:
    report = inspect_stream(_surrogate_stream())
    assert "lone_surrogate" in ANOMALY_KINDS
    assert "lone_surrogate" in report.anomaly_kinds()
    found = next(a for a in report.anomalies if a.kind == "lone_surrogate")
    assert found.times == 1
    assert "U+FFFD" in found.message
    assert report.result.text == "x\ufffdy"


def test_a_paired_surrogate_split_across_deltas_is_no_anomaly() -> None:
    high = b'data: {"id":"a","choices":[{"index":0,"delta":{"content":"\\ud83d"}}]}\n\n'
    low = b'data: {"id":"a","choices":[{"index":0,"delta":{"content":"\\ude00"}}]}\n\n'
    report = inspect_stream(high + low + b"data: [DONE]\n\n")
    assert "lone_surrogate" not in report.anomaly_kinds()
    assert report.result.text == "\U0001f600"


def test_json_and_html_of_lone_surrogates_can_be_written(tmp_path: Path) -> None:
    report = inspect_stream(_surrogate_stream())
    doc = json.dumps(report.to_dict(), ensure_ascii=False)
    (tmp_path / "report.json").write_text(doc, encoding="utf-8")
    page = render_html_report(report)
    (tmp_path / "report.html").write_text(page, encoding="utf-8")
    assert "\ufffd" in doc


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from(
                [
                    b"data: ",
                    b"\n\n",
                    b"\r",
                    b'{"choices":[{"index":',
                    b'"delta":{"content":"\\ud83d"}',
                    b'"finish_reason":"stop"',
                    b"[[[[[[[[",
                    b"data: [DONE]\n\n",
                    b": keep-alive\n\n",
                    b"\xef\xbb\xbf",
                ]
            ),
        ),
        max_size=30,
    ),
    st.sampled_from([None, 200, 500]),
)
def test_any_body_gives_a_writable_report(chunks: list[bytes], status: int | None) -> None:
    report = inspect_stream(chunks, http_status=status)
    json.dumps(report.to_dict(), ensure_ascii=False).encode("utf-8")
    render_html_report(report).encode("utf-8")
