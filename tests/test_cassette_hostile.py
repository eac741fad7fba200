"""Hostile cassette files: read line by line, numbers and headers checked at load time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rawsse import CassetteError
from rawsse.testing import load_cassette, loads_cassette


def header(**response: Any) -> dict[str, Any]:
    return {
        "format": 1,
        "recorded_at": "2026-11-23T22:00:00Z",
        "request": {"method": "POST", "url": "https://x.test/api/v1/chat/completions"},
        "response": {
            "status": 200,
            "headers": {"content-type": "text/event-stream"},
            "t": 0.1,
            **response,
        },
    }


def lines(*records: Any) -> bytes:
    return b"".join(
        (r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records
    )


def test_lines_invalid_alone_but_valid_joined_are_refused() -> None:
    # Each of lines 2 and 3 is damaged; joined with "," they are two records.
    data = lines(
        header(),
        b'{"t": 0.2, "text": "a", "x": [1',
        b'2]}, {"t": 0.3, "text": "b"}',
        {"t": 0.4, "end": "eof"},
    )
    with pytest.raises(CassetteError, match="line 2: damaged JSON"):
        loads_cassette(data)


def test_two_values_on_one_line_are_refused() -> None:
    data = lines(header(), b'{"t": 0.2, "text": "a"}, {"t": 0.3, "text": "b"}')
    with pytest.raises(CassetteError, match="line 2: damaged JSON"):
        loads_cassette(data)


def test_a_line_nested_50000_deep_is_a_cassette_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    deep = b'{"t": 0.2, "text": "a", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    path.write_bytes(lines(header(), deep))
    with pytest.raises(CassetteError, match=r"deep\.jsonl, line 2: damaged JSON .*nested"):
        load_cassette(path)


def test_a_request_body_nested_deep_in_the_header_is_a_cassette_error() -> None:
    doc = header()
    doc["request"]["body"] = json.loads("[" * 500 + "]" * 500)
    with pytest.raises(CassetteError, match=r"line 1: damaged JSON .*nested deeper than 128"):
        loads_cassette(lines(doc))


@pytest.mark.parametrize(
    ("t", "why"),
    [
        (b"1e300", "beyond"),
        (b"1e400", "beyond"),
        (b"Infinity", "Infinity is not JSON"),
        (b"NaN", "NaN is not JSON"),
        (b"-1", "bad or missing"),
    ],
)
def test_a_chunk_time_out_of_range_is_refused_at_load(t: bytes, why: str) -> None:
    data = lines(header(), b'{"t": ' + t + b', "text": "a"}')
    with pytest.raises(CassetteError, match=f"line 2: .*{why}"):
        loads_cassette(data)


@pytest.mark.parametrize("t", [b"1e300", b"Infinity"])
def test_a_response_time_out_of_range_is_refused_at_load(t: bytes) -> None:
    doc = json.dumps(header()).encode().replace(b'"t": 0.1', b'"t": ' + t)
    with pytest.raises(CassetteError, match="line 1: "):
        loads_cassette(lines(doc))


def test_a_time_of_a_week_loads() -> None:
    cassette = loads_cassette(lines(header(), {"t": 604800.0, "text": "a"}))
    assert cassette.chunks == [(604800.0, b"a")]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x-a", "1\r\nSet-Cookie: evil=1"),
        ("x-a", "1\nx: y"),
        ("x-a", "nul\x00"),
        ("x-a", "del\x7f"),
        ("x-a\r\nset-cookie", "1"),
        ("x a", "1"),
        ("", "1"),
        ("x:a", "1"),
    ],
)
def test_control_characters_in_response_headers_are_refused(name: str, value: str) -> None:
    doc = header(headers={"content-type": "text/event-stream", name: value})
    with pytest.raises(CassetteError, match=r"line 1: bad response header"):
        loads_cassette(lines(doc))


def test_a_tab_and_non_ascii_in_a_header_value_load() -> None:
    doc = header(headers={"x-a": "one\ttwo café"})
    assert loads_cassette(lines(doc)).headers["x-a"] == "one\ttwo café"
