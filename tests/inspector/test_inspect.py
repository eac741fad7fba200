from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawsse import Comment, KeepAlive, ServerSentEvent, TextDelta
from rawsse.inspect import (
    ANOMALY_KINDS,
    Anomaly,
    ChunkRow,
    EventRow,
    StreamInspector,
    inspect_cassette,
    inspect_stream,
    render_html_report,
)
from tests.conftest import CORPUS, FIXTURES, corpus_params
from tests.helpers import byte_at_a_time, fixed_size

EXPECTED = json.loads((FIXTURES / "expected.json").read_text()) if FIXTURES.is_dir() else {}
STREAM_FIXTURES = sorted(
    (name for name, e in EXPECTED.items() if e.get("kind") == "stream"),
)


def chunk(
    content: str | None = None,
    *,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    index: int = 0,
) -> bytes:
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    doc: dict[str, Any] = {
        "id": "gen-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m/x",
        "provider": "P",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        doc["usage"] = usage
    if error is not None:
        doc["error"] = error
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"
KEEP = b": OPENROUTER PROCESSING\n\n"
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "cost": 0.5}


def kinds(report: Any) -> list[str]:
    return [a.kind for a in report.anomalies]


def by_kind(report: Any, kind: str) -> Anomaly:
    found = [a for a in report.anomalies if a.kind == kind]
    assert len(found) == 1, report.anomalies
    return found[0]


# -- clean streams ---------------------------------------------------------------


def test_clean_stream_has_no_anomalies_and_rows_per_chunk_and_event() -> None:
    body = [
        (0.1, chunk("Hel")),
        (0.2, chunk("lo") + chunk(None, finish="stop")),
        (0.3, chunk(None, usage=USAGE)[:-1]),
        (0.4, b"\n" + DONE),
    ]
    report = inspect_stream(body)
    assert report.anomalies == ()
    assert report.status == "complete"
    assert report.result.text == "Hello"
    assert report.ttft == 0.1
    assert report.total == 0.4
    assert report.chunks == 4
    assert report.total_bytes == sum(len(b) for _, b in body)
    assert report.done
    assert report.line_ends == {"lf": 10, "crlf": 0, "cr": 0}
    shape = [(type(r).__name__, r.t) for r in report.rows]
    assert shape == [
        ("ChunkRow", 0.1),
        ("EventRow", 0.1),
        ("ChunkRow", 0.2),
        ("EventRow", 0.2),
        ("EventRow", 0.2),
        ("ChunkRow", 0.3),
        ("ChunkRow", 0.4),
        ("EventRow", 0.4),
        ("EventRow", 0.4),
    ]
    first = report.rows[0]
    assert first == ChunkRow(1, 0.1, 0, len(body[0][1]))
    row = report.rows[3]
    assert isinstance(row, EventRow)
    assert row.chunk == 2
    assert row.events == (TextDelta(0, "lo"),)
    assert isinstance(row.item, ServerSentEvent)
    assert row.size == len(row.item.data)


def test_untimed_body_has_no_times() -> None:
    report = inspect_stream(chunk("a", finish="stop") + chunk(None, usage=USAGE) + DONE)
    assert not report.timed
    assert report.ttft is None
    assert report.total is None
    assert all(r.t is None for r in report.rows)
    assert report.anomalies == ()


def test_incremental_feed_returns_the_rows_of_each_chunk() -> None:
    inspector = StreamInspector()
    rows = inspector.feed(KEEP + b"data: [DO", 0.5)
    assert rows == [
        ChunkRow(1, 0.5, 0, len(KEEP) + 9),
        EventRow(
            1, 0.5, 21, Comment("OPENROUTER PROCESSING"), (KeepAlive("OPENROUTER PROCESSING"),)
        ),
    ]
    assert inspector.feed(b"", 0.6) == []
    rows = inspector.feed(b"NE]\n\n", 0.7)
    assert [type(r) for r in rows] == [ChunkRow, EventRow]
    report = inspector.close()
    assert report.done
    assert kinds(report) == ["keep_alive", "missing_usage"]


# -- each anomaly --------------------------------------------------------------------


def test_keep_alives_count_and_longest_gap_covered() -> None:
    body = [
        (0.2, KEEP),
        (1.2, KEEP),
        (2.0, chunk("a")),
        (2.1, KEEP),
        (2.5, chunk("b", finish="stop")),
        (2.6, chunk(None, usage=USAGE) + DONE),
    ]
    report = inspect_stream(body)
    a = by_kind(report, "keep_alive")
    assert a.times == 3
    assert a.duration == pytest.approx(2.0)
    assert a.message == (
        "3 keep-alive comment(s) (': OPENROUTER PROCESSING'); the longest wait they "
        "covered: 2.000 s (0.000 s to 2.000 s)"
    )
    assert report.keep_alives == 3


def test_stall_between_content_events() -> None:
    body = [
        (0.5, chunk("a")),
        (1.0, chunk("b")),
        (7.5, KEEP),
        (9.0, chunk("c", finish="stop")),
        (9.1, chunk(None, usage=USAGE) + DONE),
    ]
    report = inspect_stream(body, stall_threshold=5)
    stall = by_kind(report, "stall")
    assert stall == Anomaly(
        "stall", "no content for 8.000 s (1.000 s to 9.000 s; threshold 5 s)", 1.0, 1, 8.0
    )
    assert kinds(inspect_stream(body, stall_threshold=8.5)) == ["keep_alive"]


def test_in_band_error_message_is_the_servers() -> None:
    err = {"code": 429, "message": "Rate limit exceeded", "metadata": {"error_type": "x"}}
    body = chunk("partial") + chunk("", finish="error", error=err) + DONE
    report = inspect_stream(body)
    assert report.status == "error"
    assert by_kind(report, "in_band_error").message == "Rate limit exceeded"
    assert kinds(report) == ["in_band_error", "missing_usage"]


def test_error_finish_without_message() -> None:
    body = chunk("x") + chunk(None, finish="error") + DONE
    report = inspect_stream(body)
    assert report.status == "error"
    assert by_kind(report, "error_finish").message == (
        "choice 0 finished with 'error' but no error message"
    )


def test_empty_deltas_missing_usage_and_no_done() -> None:
    body = chunk("") + chunk(None) + chunk("a", finish="stop")
    report = inspect_stream(body)
    assert kinds(report) == ["empty_delta", "missing_usage", "no_done"]
    assert by_kind(report, "empty_delta").times == 2
    # Finished, but neither usage nor [DONE] came: cut before the end, as the
    # clients and the accumulator decide (``rawsse.stream_status``).
    assert report.status == "truncated"


def test_no_done_and_no_finish_is_truncated() -> None:
    report = inspect_stream(chunk("a"))
    assert report.status == "truncated"
    assert kinds(report) == ["missing_usage", "no_done"]


def test_invalid_json_and_malformed_chunk() -> None:
    body = (
        chunk("a")
        + b"data: {not json\n\n"
        + b'data: {"choices": 5}\n\n'
        + chunk("b", finish="stop")
        + chunk(None, usage=USAGE)
        + DONE
    )
    report = inspect_stream(body)
    assert kinds(report) == ["invalid_json", "malformed_chunk"]
    assert by_kind(report, "invalid_json").message == "data is not JSON: '{not json'"
    bad = [r for r in report.rows if isinstance(r, EventRow) and r.error is not None]
    assert len(bad) == 2
    assert report.result.text == "ab"
    assert report.status == "complete"


def test_mixed_line_ends_counted_across_chunk_boundaries() -> None:
    body = [
        (None, b": hi\r"),
        (None, b"\n\r\n" + chunk("a", finish="stop").replace(b"\n\n", b"\r\r")),
        (None, chunk(None, usage=USAGE) + DONE),
    ]
    report = inspect_stream([b for _, b in body])
    assert report.line_ends == {"lf": 4, "crlf": 2, "cr": 2}
    assert by_kind(report, "mixed_line_ends").message == "mixed line ends: 4 LF, 2 CRLF, 2 CR"
    crlf_only = inspect_stream(fixed_size((chunk("a", finish="stop") + DONE), 1))
    assert "mixed_line_ends" not in kinds(crlf_only)


def test_finish_repeated_and_content_after_finish() -> None:
    body = chunk("a", finish="stop") + chunk("b") + chunk(None, finish="stop", usage=USAGE) + DONE
    report = inspect_stream(body)
    assert kinds(report) == ["finish_repeated", "content_after_finish"]
    assert by_kind(report, "finish_repeated").message == (
        "choice 0 got a finish reason 2 times ('stop', 'stop')"
    )
    assert by_kind(report, "content_after_finish").message == (
        "choice 0 got content after its finish reason"
    )


def test_tool_call_arguments_invalid_and_empty() -> None:
    calls = [
        {"index": 0, "id": "c0", "type": "function", "function": {"name": "f", "arguments": ""}},
        {"index": 1, "id": "c1", "type": "function", "function": {"name": "g", "arguments": ""}},
    ]
    body = (
        chunk(None, tool_calls=calls)
        + chunk(None, tool_calls=[{"index": 1, "function": {"arguments": '{"a": 1'}}])
        + chunk(None, finish="tool_calls", usage=USAGE)
        + DONE
    )
    report = inspect_stream(body)
    assert kinds(report) == ["empty_tool_arguments", "invalid_tool_arguments"]
    assert by_kind(report, "empty_tool_arguments").message == (
        "tool call f (choice 0) has empty arguments (read as {})"
    )
    assert by_kind(report, "invalid_tool_arguments").message.startswith(
        "tool call g (choice 0) arguments are not valid JSON: '{\"a\": 1' ("
    )


def test_data_after_done() -> None:
    body = chunk("a", finish="stop", usage=USAGE) + DONE + chunk("late") + KEEP
    report = inspect_stream(body)
    a = by_kind(report, "data_after_done")
    assert (a.message, a.times) == ("1 data event(s) after [DONE] (ignored)", 1)
    assert report.result.text == "a"


def test_unterminated_done() -> None:
    body = chunk("a", finish="stop", usage=USAGE) + b"data: [DONE]\n"
    report = inspect_stream(body)
    assert kinds(report) == ["unterminated_event", "no_done"]
    assert by_kind(report, "unterminated_event").message == (
        "the body ends inside an event ('data: [DONE]' has no blank line after it), "
        "so a spec-compliant parser discards it"
    )
    assert by_kind(report, "no_done").message == (
        "the stream ended without data: [DONE] (the [DONE] at the end was not terminated)"
    )


def test_cut_stream() -> None:
    body = [(0.3, chunk("The sea")), (0.4, b'data: {"id":"gen-1","cho')]
    report = inspect_stream(body, end="error", error="ReadError: connection reset")
    assert report.status == "truncated"
    assert kinds(report) == ["missing_usage", "unterminated_event", "no_done", "stream_cut"]
    assert by_kind(report, "stream_cut").message == (
        "the body was cut: ReadError: connection reset"
    )
    missing = inspect_stream(body, end="missing")
    assert by_kind(missing, "stream_cut").message == (
        "the recording has no end line: the body was cut"
    )


def test_http_error_body() -> None:
    body = b'{"error": {"code": 404, "message": "No endpoints found for nope/x."}}'
    report = inspect_stream([(0.2, body)], http_status=404, response_t=0.2)
    assert report.status == "error"
    assert report.anomalies == (
        Anomaly("http_error", "HTTP 404: No endpoints found for nope/x.", 0.2),
    )
    assert [type(r) for r in report.rows] == [ChunkRow]


def test_a_line_past_the_decoder_bound_is_reported_not_raised() -> None:
    inspector = StreamInspector(max_line_bytes=1000)
    inspector.feed(chunk("a"), 0.1)
    inspector.feed(b"data: " + b"x" * 2000, 0.2)
    inspector.feed(b"\n\n" + DONE, 0.3)
    report = inspector.close()
    assert kinds(report)[0] == "sse_limit"
    assert report.anomalies[0].message.endswith("; the rest is not decoded")
    assert report.total_bytes == len(chunk("a")) + 2006 + 2 + len(DONE)
    assert report.result.text == "a"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.binary(max_size=40) | st.sampled_from([KEEP, DONE, chunk("x"), b"\r", b"data:"]))
)
def test_any_bytes_give_a_report_never_an_exception(pieces: list[bytes]) -> None:
    report = inspect_stream(pieces)
    assert report.total_bytes == sum(len(p) for p in pieces)
    assert all(a.kind in ANOMALY_KINDS for a in report.anomalies)
    assert report.status in ("complete", "truncated", "error")
    render_html_report(report)


def test_other_api_is_named_not_decoded() -> None:
    body = b'event: message_start\ndata: {"type":"message_start"}\n\n'
    report = inspect_stream(body)
    assert kinds(report) == ["other_api"]
    assert report.anomalies[0].message == (
        "not a chat-completions stream (first event type 'message_start'); "
        "typed chat events are not decoded"
    )


def test_to_dict_is_json_with_status_events_and_anomalies() -> None:
    body = [(0.1, KEEP), (0.2, chunk("a", finish="stop")), (0.3, chunk(None, usage=USAGE) + DONE)]
    doc = inspect_stream(body).to_dict()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["status"] == "complete"
    assert doc["anomalies"] == [
        {
            "kind": "keep_alive",
            "message": "1 keep-alive comment(s) (': OPENROUTER PROCESSING'); the longest wait "
            "they covered: 0.200 s (0.000 s to 0.200 s)",
            "t": None,
            "count": 1,
            "duration": 0.2,
        }
    ]
    assert [e["row"] for e in doc["events"]] == [
        "chunk", "comment", "chunk", "event", "chunk", "event", "event"
    ]  # fmt: skip
    assert doc["events"][3]["chat"][1] == {"type": "TextDelta", "index": 0, "text": "a"}
    assert doc["usage"]["cost"] == 0.5
    assert doc["timing"] == {
        "timed": True,
        "response": None,
        "ttft": 0.2,
        "last_token": 0.2,
        "total": 0.3,
    }


# -- real captures and the project's fixtures -------------------------------------------

CORPUS_EXPECTED = {
    "openrouter__chat_midstream_error_token_limit_minimax.sse": (
        "error",
        [
            ("keep_alive", "17 keep-alive comment(s) (': OPENROUTER PROCESSING')"),
            ("in_band_error", "Token limit reached"),
            ("finish_repeated", "choice 0 got a finish reason 2 times ('length', 'length')"),
        ],
    ),
    "openrouter__chat_midstream_error_DOCS_handwritten.sse": (
        "error",
        [
            ("keep_alive", "1 keep-alive comment(s) (': OPENROUTER PROCESSING')"),
            ("in_band_error", "Rate limit exceeded"),
            ("missing_usage", "no usage (token counts, cost) in the stream"),
        ],
    ),
    "openrouter__chat_tool_call_empty_args_claude_bedrock.sse": (
        "complete",
        [
            (
                "empty_tool_arguments",
                "tool call get_all_tabs (choice 0) has empty arguments (read as {})",
            ),
            (
                "unterminated_event",
                "the body ends inside an event ('data: [DONE]' has no blank line after it), "
                "so a spec-compliant parser discards it",
            ),
            (
                "no_done",
                "the stream ended without data: [DONE] (the [DONE] at the end was not terminated)",
            ),
        ],
    ),
    "openrouter__chat_plain_gpt4omini_azure_2026.sse": (
        "complete",
        [
            ("keep_alive", "1 keep-alive comment(s) (': OPENROUTER PROCESSING')"),
            ("finish_repeated", "choice 0 got a finish reason 2 times ('stop', 'stop')"),
        ],
    ),
    "together__chat_plain.sse": ("complete", []),
}


@pytest.mark.parametrize("name", sorted(CORPUS_EXPECTED))
def test_corpus_anomalies_exactly(name: str) -> None:
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    report = inspect_stream(path.read_bytes())
    status, anomalies = CORPUS_EXPECTED[name]
    assert report.status == status
    assert [(a.kind, a.message) for a in report.anomalies] == anomalies


@pytest.mark.parametrize("path", corpus_params())
def test_corpus_reports_do_not_depend_on_chunking(path: Path) -> None:
    data = path.read_bytes()
    whole = inspect_stream(data)
    pieces = byte_at_a_time(data) if len(data) < 20_000 else fixed_size(data, 997)
    split = inspect_stream(pieces)
    assert split.anomalies == whole.anomalies
    assert split.status == whole.status
    assert split.result == whole.result
    events = [r.events for r in whole.rows if isinstance(r, EventRow)]
    assert [r.events for r in split.rows if isinstance(r, EventRow)] == events
    assert json.dumps(whole.to_dict())  # JSON-ready for every capture


@pytest.mark.parametrize("name", STREAM_FIXTURES)
def test_fixture_status_keepalives_done_and_errors(name: str) -> None:
    expected = EXPECTED[name]
    report = inspect_stream((FIXTURES / expected["body_file"]).read_bytes())
    assert report.status == expected["status"]
    assert report.keep_alives == expected["keepalives"]
    assert report.done == expected["done"]
    errors = [a.message for a in report.anomalies if a.kind == "in_band_error"]
    assert errors == ([expected["error"]["message"]] if expected["error"] else [])
    malformed = [a for a in report.anomalies if a.kind in ("invalid_json", "malformed_chunk")]
    assert len(malformed) == len(expected["malformed_payloads"])
    assert ("missing_usage" in kinds(report)) == (expected["usage"] is None)


@pytest.mark.parametrize("name", STREAM_FIXTURES)
def test_fixture_cassettes_agree_with_their_bodies(name: str) -> None:
    from rawsse.testing import load_cassette

    expected = EXPECTED[name]
    cassette = load_cassette(FIXTURES / expected["cassette"])
    timed = inspect_cassette(cassette)
    untimed = inspect_stream(cassette.body)
    assert timed.status == expected["status"] == untimed.status
    assert timed.timed
    assert timed.total == cassette.end_t
    assert timed.response_t == cassette.response_t
    assert timed.ttft is not None
    assert timed.ttft >= cassette.response_t
    assert timed.result == untimed.result
    ignore = {"keep_alive", "stream_cut", "stall"}  # timing-only findings
    assert [a.message for a in timed.anomalies if a.kind not in ignore] == [
        a.message for a in untimed.anomalies if a.kind not in ignore
    ]


# -- the HTML report -------------------------------------------------------------------

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"}


class Checker(HTMLParser):
    """Checks that every element is closed in order; collects tags and their classes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def classes(self, tag: str) -> list[str]:
        return [a.get("class") or "" for t, a in self.tags if t == tag]


def parse_html(page: str) -> Checker:
    checker = Checker()
    checker.feed(page)
    checker.close()
    assert checker.errors == []
    assert checker.stack == []
    return checker


def test_html_report_is_well_formed_and_shows_the_timeline() -> None:
    body = [
        (0.2, KEEP),
        (0.9, KEEP),
        (1.5, chunk("a")),
        (8.0, chunk("b", finish="stop")),
        (8.1, chunk(None, usage=USAGE) + DONE),
    ]
    report = inspect_stream(body, response_t=0.1)
    page = render_html_report(report, title="t")
    html = parse_html(page)
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page
    assert html.classes("polyline") == ["bytes", "tokens"]
    assert html.classes("line").count("keep-alive") == 2
    assert html.classes("rect").count("stall") == 1
    assert "ttft" in html.classes("g")
    assert "TTFT 1.500 s" in html.text
    assert [a["data-kind"] for t, a in html.tags if t == "li"] == ["keep_alive", "stall"]


def test_html_escapes_stream_content() -> None:
    evil = '</td></tr></table><script>alert("x")</script><img src=x onerror=alert(1)>'
    body = chunk(evil, finish="stop") + b": <b>bold</b>\n\n" + DONE
    page = render_html_report(inspect_stream(body), title="<i>title</i>")
    html = parse_html(page)
    assert "<script" not in page
    assert "<img" not in page
    assert not any(t in ("script", "img", "b") for t, _ in html.tags)
    assert any(evil in chunk_text for chunk_text in html.text)


@pytest.mark.parametrize("name", STREAM_FIXTURES)
def test_html_for_every_fixture_is_well_formed(name: str) -> None:
    data = (FIXTURES / EXPECTED[name]["body_file"]).read_bytes()
    report = inspect_stream(fixed_size(data, 64))
    html = parse_html(render_html_report(report))
    assert html.classes("svg") == [""]
    assert html.classes("polyline") == ["bytes", "tokens"]
