"""Cassette format v1: reading, writing, redaction and clear errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawsse import CassetteError
from rawsse.testing import (
    REDACTED,
    Cassette,
    dumps_cassette,
    load_cassette,
    loads_cassette,
    looks_like_secret,
    redact_headers,
    redact_url,
    save_cassette,
)

from .conftest import FIXTURES, ROOT

KEY = "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"
CASSETTE_FILES = sorted(
    [*(FIXTURES / "cassettes").glob("*.jsonl"), *(ROOT / "src/rawsse/recordings").glob("*.jsonl")]
)


def header(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": 1,
        "recorded_at": "2026-11-23T22:00:00Z",
        "request": {"method": "POST", "url": "https://x.test/api/v1/chat/completions"},
        "response": {"status": 200, "headers": {"content-type": "text/event-stream"}, "t": 0.1},
    }
    doc.update(overrides)
    return doc


def lines(*docs: Any) -> bytes:
    return "".join(json.dumps(d) + "\n" for d in docs).encode()


# -- reading and writing -------------------------------------------------------------------


@pytest.mark.parametrize("path", CASSETTE_FILES, ids=lambda p: p.name)
def test_project_cassettes_round_trip_byte_for_byte(path: Path) -> None:
    cassette = load_cassette(path)
    assert cassette.path == path
    assert cassette.end in ("eof", "error")
    assert dumps_cassette(cassette) == path.read_bytes()


def test_text_and_base64_chunks_keep_every_byte() -> None:
    euro = "€".encode()
    chunks = [(0.0, b"data: a\r\n"), (0.5, b"data: " + euro[:1]), (0.75, euro[1:] + b"\n\n")]
    cassette = Cassette(
        request={"method": "POST", "url": "https://x.test/v1/chat/completions", "headers": {}},
        status=200,
        headers={"content-type": "text/event-stream"},
        chunks=chunks,
        end_t=1.0,
        recorded_at="2026-11-23T22:00:00Z",
    )
    data = dumps_cassette(cassette)
    records = [json.loads(line) for line in data.decode().splitlines()]
    assert records[1] == {"t": 0.0, "text": "data: a\r\n"}
    assert records[2] == {"t": 0.5, "b64": base64.b64encode(b"data: " + euro[:1]).decode()}
    assert records[3] == {"t": 0.75, "b64": base64.b64encode(euro[1:] + b"\n\n").decode()}
    assert records[4] == {"t": 1.0, "end": "eof"}
    back = loads_cassette(data)
    assert back.chunks == chunks
    assert back.body == b"data: a\r\ndata: \xe2\x82\xac\n\n"
    assert back == cassette.__class__(
        **{**cassette.__dict__, "request": {**cassette.request, "body": None}}
    )


def test_line_separators_inside_text_stay_on_one_line(tmp_path: Path) -> None:
    body = "data: a\u2028b\u2029c\x85d\n\n".encode()
    path = save_cassette(Cassette.from_body(body), tmp_path / "sep.jsonl")
    raw = path.read_bytes()
    assert raw.count(b"\n") == 3  # header, one chunk, end
    assert b"\\u2028" in raw
    assert load_cassette(path).body == body


def test_save_writes_parent_directories_and_no_temp_file(tmp_path: Path) -> None:
    path = save_cassette(Cassette.from_body(b"data: x\n\n"), tmp_path / "a" / "b" / "c.jsonl")
    assert path.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == ["c.jsonl"]


def test_from_body_builds_a_served_cassette() -> None:
    cassette = Cassette.from_body([b"a", b"", b"bc"], interval=0.25, request_body={"model": "m"})
    assert cassette.chunks == [(0.0, b"a"), (0.5, b"bc")]
    assert cassette.model == "m"
    assert cassette.method == "POST"
    assert cassette.headers == {"content-type": "text/event-stream"}
    assert cassette.name == "m"


def test_a_file_without_end_line_reads_as_cut() -> None:
    data = lines(header(), {"t": 0.2, "text": "data: x\n"})
    cassette = loads_cassette(data)
    assert cassette.end == "missing"
    assert cassette.error is None
    assert cassette.body == b"data: x\n"
    # Written back, it still has no end line.
    assert loads_cassette(dumps_cassette(cassette)).end == "missing"


@pytest.mark.parametrize("end", ["eof", "closed"])
def test_end_kinds(end: str) -> None:
    cassette = loads_cassette(lines(header(), {"t": 0.3, "end": end}))
    assert (cassette.end, cassette.end_t, cassette.chunks) == (end, 0.3, [])


def test_error_end_keeps_the_exception_text() -> None:
    data = lines(header(), {"t": 0.2, "text": "da"}, {"t": 0.3, "end": "error", "error": "X: y"})
    cassette = loads_cassette(data)
    assert (cassette.end, cassette.error, cassette.body) == ("error", "X: y", b"da")


# -- errors --------------------------------------------------------------------------------


def test_missing_file_is_a_cassette_error(tmp_path: Path) -> None:
    with pytest.raises(CassetteError, match="no such cassette"):
        load_cassette(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    ("data", "where", "why"),
    [
        (b"", "line 1", "empty file"),
        (b'{"format": 1,\n', "line 1", "damaged JSON"),
        (lines(header())[:-1] + b'\n{"t": 0.1, "te', "line 2", "damaged JSON"),
        (lines({"t": 0.1, "text": "data: x\n"}), "line 1", "missing header"),
        (lines(["not", "an", "object"]), "line 1", "missing header"),
        (lines(header(format=2)), "line 1", "format 2 is newer"),
        (lines(header(format="1")), "line 1", "bad format"),
        (lines(header(request={"url": "u"})), "line 1", 'bad "request"'),
        (lines(header(response=None)), "line 1", 'bad "response"'),
        (lines(header(response={"status": "200", "headers": {}})), "line 1", "status"),
        (lines(header(response={"status": 200, "headers": {"a": 1}})), "line 1", "headers"),
        (lines(header(response={"status": 200, "headers": {}, "t": -1})), "line 1", "response.t"),
        (lines(header(recorded_at=5)), "line 1", "recorded_at"),
        (lines(header(), {"text": "x"}), "line 2", '"t"'),
        (lines(header(), {"t": True, "text": "x"}), "line 2", '"t"'),
        (lines(header(), {"t": 0.1, "text": 5}), "line 2", '"text" must be a string'),
        (lines(header(), {"t": 0.1, "b64": "!!"}), "line 2", "not base64"),
        (lines(header(), {"t": 0.1, "b64": 5}), "line 2", "not base64"),
        (lines(header(), {"t": 0.1, "data": "x"}), "line 2", '"text", "b64" or "end"'),
        (lines(header(), {"t": 0.1, "end": "done"}), "line 2", 'bad "end"'),
        (lines(header(), {"t": 0.1, "end": "error"}), "line 2", '"error" string'),
        (lines(header(), {"t": 0.1, "end": "eof"}, {"t": 0.2, "text": "x"}), "line 3", "after"),
        (lines(header(), 7), "line 2", "JSON object"),
        (lines(header()) + b"\xff\n", "line 2", "not UTF-8"),
    ],
)
def test_damaged_cassettes_name_file_and_line(data: bytes, where: str, why: str) -> None:
    with pytest.raises(CassetteError) as info:
        loads_cassette(data, source="some/file.jsonl")
    message = str(info.value)
    assert message.startswith(f"some/file.jsonl, {where}: ")
    assert why in message


def test_newer_format_says_to_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "new.jsonl"
    path.write_bytes(lines(header(format=99)))
    with pytest.raises(CassetteError, match=r"new\.jsonl, line 1: format 99 is newer.*upgrade"):
        load_cassette(path)


# -- redaction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        KEY,
        "sk-proj-abcdefghijklmnop1234",
        "sk-ant-api03-abcdefghijklmnop",
        "Bearer anything-at-all",
        "bearer abc.def.ghi",
        "Basic dXNlcjpwYXNz",
        "AIzaSyA1234567890abcdefghijklmnopqrstu",
        "gsk_abcdefghijklmnopqrstuv",
        "xai-abcdefghijklmnopqrstuv",
        "prefix " + KEY + " suffix",
    ],
)
def test_key_like_values_are_secrets(value: str) -> None:
    assert looks_like_secret(value)


@pytest.mark.parametrize(
    "value",
    ["text/event-stream", "gen-1795176301-EtgtRvRGN31KNuy1NUs4", "openai/gpt-4o", "task-list", ""],
)
def test_ordinary_values_are_not_secrets(value: str) -> None:
    assert not looks_like_secret(value)


def test_redact_headers() -> None:
    headers = [
        ("Authorization", "Bearer " + KEY),
        ("Cookie", "session=abc"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("X-Api-Key", "plain"),
        ("Api-Key", "plain"),
        ("x-goog-api-key", "plain"),
        ("X-Auth-Token", "plain"),
        ("X-Custom", KEY),
        ("X-Ratelimit-Remaining-Tokens", "1000"),
        ("Content-Type", "application/json"),
    ]
    assert redact_headers(headers) == {
        "authorization": REDACTED,
        "cookie": REDACTED,
        "set-cookie": f"{REDACTED}, {REDACTED}",
        "x-api-key": REDACTED,
        "api-key": REDACTED,
        "x-goog-api-key": REDACTED,
        "x-auth-token": REDACTED,
        "x-custom": REDACTED,
        "x-ratelimit-remaining-tokens": "1000",
        "content-type": "application/json",
    }


def test_redact_url() -> None:
    assert redact_url(f"https://h.test/v1/x?key=abc&model=m&other={KEY}") == (
        f"https://h.test/v1/x?key={REDACTED}&model=m&other={REDACTED}"
    )
    assert redact_url("https://user:pw@h.test/p") == f"https://{REDACTED}@h.test/p"
    assert redact_url("https://h.test/p?model=m") == "https://h.test/p?model=m"


def test_the_writer_redacts_whatever_it_is_given(tmp_path: Path) -> None:
    odd_key = "my-private-token-value-123"
    cassette = Cassette(
        request={
            "method": "POST",
            "url": f"https://h.test/api/v1/chat/completions?api_key={KEY}",
            "headers": {"Authorization": f"Bearer {odd_key}", "X-Title": "t"},
            "body": {"model": "m", "note": f"key is {odd_key}", "list": [KEY]},
        },
        status=200,
        headers={"set-cookie": "s=1", "x-echo": f"Bearer {KEY}"},
        chunks=[(0.0, b"data: ok\n\n")],
    )
    path = save_cassette(cassette, tmp_path / "secret.jsonl")
    raw = path.read_bytes()
    assert KEY.encode() not in raw
    assert odd_key.encode() not in raw
    assert b"sk-" not in raw
    doc = json.loads(raw.split(b"\n")[0])
    assert doc["request"]["headers"] == {"authorization": REDACTED, "x-title": "t"}
    assert doc["request"]["body"] == {
        "model": "m",
        "note": f"key is {REDACTED}",
        "list": [REDACTED],
    }
    assert doc["response"]["headers"] == {"set-cookie": REDACTED, "x-echo": REDACTED}


# -- properties ------------------------------------------------------------------------------

SSE_PARTS = ["\r", "\n", ":", "data: ", "€", "\u2028", "\x85", "\ufeff", "a", '"', "\\"]
SSE_BYTES = st.binary(max_size=40) | st.lists(st.sampled_from(SSE_PARTS), max_size=12).map(
    lambda parts: "".join(parts).encode("utf-8")
)


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(SSE_BYTES.filter(bool), max_size=12),
    end=st.sampled_from(["eof", "error", "closed", "missing"]),
)
def test_any_chunks_round_trip_exactly(chunks: list[bytes], end: str) -> None:
    timed = [(i * 0.125, data) for i, data in enumerate(chunks)]
    cassette = Cassette(
        request={"method": "POST", "url": "https://x.test/v1", "headers": {}, "body": None},
        status=200,
        headers={},
        chunks=timed,
        end=end,
        error="ReadError: x" if end == "error" else None,
        end_t=None if end == "missing" else 9.0,
        recorded_at="2026-11-23T22:00:00Z",
    )
    data = dumps_cassette(cassette)
    assert data.count(b"\n") == 1 + len(chunks) + (end != "missing")
    back = loads_cassette(data)
    assert back.chunks == timed
    assert back.body == b"".join(chunks)
    assert (back.end, back.error) == (end, cassette.error)
    assert dumps_cassette(back) == data
