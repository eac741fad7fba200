"""The HTML report: timeline labels that never overlap or leave the plot, and the assembled
answer and tool calls on the page (escaped: a stream is untrusted input)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import pytest

from rawsse.inspect import inspect_cassette, inspect_stream, render_html_report
from rawsse.testing import load_cassette
from tests.conftest import FIXTURES

PLOT_LEFT, PLOT_RIGHT = 70, 960 - 70


class Page(HTMLParser):
    """The page's tags (with attributes) and the text inside each tag by class."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.open: list[str] = []
        self.text_by_class: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag not in ("meta", "br", "line", "rect", "circle", "polyline"):
            self.open.append(attributes.get("class") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag not in ("meta", "br", "line", "rect", "circle", "polyline") and self.open:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        if self.open:
            self.text_by_class.setdefault(self.open[-1], []).append(data)


def page_of(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    doc = {
        "id": "g",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    doc.update(extra)
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


USAGE = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


def labels(page: Page) -> dict[str, tuple[float, float, float]]:
    """label class -> (left, right, y)."""
    out = {}
    for tag, attrs in page.tags:
        if tag == "text" and (attrs.get("class") or "").endswith("-label"):
            left, right = float(attrs["data-left"] or 0), float(attrs["data-right"] or 0)
            out[attrs["class"] or ""] = (left, right, float(attrs["y"] or 0))
    return out


def overlap(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
    return a[2] == b[2] and a[0] < b[1] and b[0] < a[1]


@pytest.mark.parametrize(("headers", "ttft"), [(0.20, 0.21), (0.5, 0.5), (0.1, 9.99), (9.9, 10.0)])
def test_headers_and_ttft_labels_never_overlap_or_leave_the_plot(
    headers: float, ttft: float
) -> None:
    body = [
        (ttft, chunk({"role": "assistant", "content": "hi"})),
        (10.0, chunk({}, "stop", usage=USAGE) + b"data: [DONE]\n\n"),
    ]
    report = inspect_stream(body, response_t=headers, end_t=10.0)
    found = labels(page_of(render_html_report(report)))
    assert set(found) == {"headers-label", "ttft-label"}
    assert not overlap(found["headers-label"], found["ttft-label"])
    for left, right, _ in found.values():
        assert PLOT_LEFT <= left < right <= PLOT_RIGHT


def test_stall_label_keeps_clear_of_the_others() -> None:
    body = [
        (0.3, chunk({"role": "assistant", "content": "a"})),
        (8.0, chunk({"content": "b"}, "stop", usage=USAGE) + b"data: [DONE]\n\n"),
    ]
    report = inspect_stream(body, response_t=0.29, end_t=8.0, stall_threshold=2)
    found = labels(page_of(render_html_report(report)))
    assert set(found) == {"headers-label", "ttft-label", "stall-label"}
    names = sorted(found)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not overlap(found[a], found[b]), (a, b)


def test_the_answer_and_tool_calls_are_shown() -> None:
    report = inspect_cassette(load_cassette(FIXTURES / "cassettes" / "parallel_tool_calls.jsonl"))
    page = page_of(render_html_report(report))
    calls = [c.name for c in report.result.choices[0].tool_calls]
    text = " ".join(t for texts in page.text_by_class.values() for t in texts)
    for call in report.result.choices[0].tool_calls:
        assert call.name in text
        assert call.arguments in text
    assert calls == ["get_weather", "get_time"]
    plain = inspect_cassette(load_cassette(FIXTURES / "cassettes" / "plain_text.jsonl"))
    answer = page_of(render_html_report(plain)).text_by_class["answer"]
    assert "".join(answer) == plain.result.text


def test_every_choice_is_shown_and_labelled() -> None:
    report = inspect_cassette(load_cassette(FIXTURES / "cassettes" / "n2_choices.jsonl"))
    html = render_html_report(report)
    page = page_of(html)
    assert "".join(page.text_by_class["answer"]) == "".join(
        c.content for c in report.result.choices
    )
    assert "choice 0 (finish stop)" in html
    assert "choice 1 (finish stop)" in html


def test_the_answer_is_escaped() -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    call = {
        "index": 0,
        "id": "<b>id</b>",
        "type": "function",
        "function": {"name": "<i>n</i>", "arguments": '{"a":"</td><script>"}'},
    }
    body = (
        chunk({"role": "assistant", "content": hostile, "reasoning": "<u>r</u>"})
        + chunk({"tool_calls": [call]}, "tool_calls", usage=USAGE)
        + b"data: [DONE]\n\n"
    )
    html = render_html_report(inspect_stream(body))
    assert "<script" not in html
    assert "<img" not in html
    for tag in ("<u>", "<i>n", "<b>id"):
        assert tag not in html
    page = page_of(html)
    assert "".join(page.text_by_class["answer"]) == hostile
    assert "".join(page.text_by_class["reasoning"]) == "<u>r</u>"
