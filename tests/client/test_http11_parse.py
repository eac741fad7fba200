"""The sans-I/O HTTP/1.1 response reader, against h11 and on its own.

Differential: any response (status, headers, chunked, Content-Length or
close-delimited bodies, with extensions and trailers), cut anywhere, gives h11's
head and body bytes; a mangled one is our ``ParseError`` wherever h11 fails.
Fixed responses are fed whole, one byte at a time and cut at every byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import h11
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rawsse._http11_parse import (
    MAX_CHUNK_LINE,
    MAX_HEAD,
    MAX_TRAILERS,
    ParseError,
    ResponseHead,
    ResponseParser,
)
from tests.helpers import byte_at_a_time, every_split, whole


@dataclass(frozen=True)
class Read:
    """What a reader made of one response: the head and body, or the error."""

    head: tuple[bytes, int, bytes, list[tuple[bytes, bytes]]] | None
    body: bytes
    error: str | None = None
    keep_alive: bool | None = None


def ours(parts: list[bytes], method: bytes = b"GET", eof: bool = True) -> Read:
    parser = ResponseParser(method)
    head: ResponseHead | None = None
    body = []
    try:
        for part in parts:
            if head is None:
                head = parser.feed_head(part)
                if head is not None:
                    body.append(parser.feed_body(b""))
            else:
                body.append(parser.feed_body(part))
        if eof:
            parser.feed_eof()
    except ParseError as exc:
        return Read(None, b"", str(exc))
    assert head is not None
    assert parser.done
    got = (head.http_version, head.status, head.reason, head.headers)
    return Read(got, b"".join(body), None, parser.keep_alive)


def theirs(parts: list[bytes], method: bytes = b"GET", eof: bool = True) -> Read:
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    conn.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
    conn.send(h11.EndOfMessage())
    head = None
    body = []
    try:
        for part in [*filter(None, parts), b""] if eof else parts:
            if part == b"" and conn.their_state is h11.SEND_RESPONSE:
                raise h11.RemoteProtocolError("Server disconnected without sending a response.")
            conn.receive_data(part)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA or type(event) is h11.ConnectionClosed:
                    break
                if type(event) is h11.Response:
                    version = b"HTTP/" + event.http_version
                    head = (version, event.status_code, event.reason, event.headers.raw_items())
                elif type(event) is h11.Data:
                    body.append(bytes(event.data))
                elif type(event) is h11.EndOfMessage:
                    keep_alive = conn.their_state is h11.DONE
                    assert head is not None
                    return Read(head, b"".join(body), None, keep_alive)
    except h11.RemoteProtocolError as exc:
        return Read(None, b"", str(exc))
    return Read(None, b"", "incomplete")


# -- strategies -------------------------------------------------------------------------

TOKEN = st.text("abcxyzABC-_.!#0123456789", min_size=1, max_size=8).map(str.encode)
OWS = st.sampled_from([b"", b" ", b"\t", b"  "])
VALUE_BYTE = st.sampled_from([b"a", b"Z", b"0", b"/", b";", b"=", b'"', b"\x01", b"\x7f", b"\xc3"])
WORD = st.lists(VALUE_BYTE, min_size=1, max_size=5).map(b"".join)
VALUE = st.lists(WORD, max_size=3).map(b" ".join)
EOL = st.sampled_from([b"\r\n", b"\r\n", b"\n"])


@st.composite
def header_lines(draw: st.DrawFn, max_size: int = 4) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, max_size))):
        name = draw(TOKEN)
        if name.lower() in (b"content-length", b"transfer-encoding", b"connection"):
            name = b"x-" + name
        lines.append(name + b":" + draw(OWS) + draw(VALUE) + draw(OWS) + draw(EOL))
    return b"".join(lines)


@st.composite
def chunked_body(draw: st.DrawFn, body: bytes) -> bytes:
    out = []
    pos = 0
    while pos < len(body):
        size = draw(st.integers(1, len(body) - pos))
        hex_size = draw(st.sampled_from([b"%x", b"%X", b"00%x"])) % size
        ext = draw(st.sampled_from([b"", b";a=b", b';name="v;x"', b";x"]))
        out.append(hex_size + ext + draw(OWS) + b"\r\n" + body[pos : pos + size] + b"\r\n")
        pos += size
    out.append(b"0" + draw(st.sampled_from([b"", b";last"])) + b"\r\n")
    out.append(draw(header_lines(max_size=2)) + draw(EOL))
    return b"".join(out)


@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, bytes, bool]:
    """(response bytes, request method, whether the body runs until the close)."""
    out = []
    for _ in range(draw(st.integers(0, 2))):
        status = draw(st.sampled_from([100, 102, 103, 199]))
        out.append(b"HTTP/1.1 %d Early%b%b" % (status, draw(EOL), draw(header_lines(2))))
        out.append(draw(EOL))
    version = draw(st.sampled_from([b"1.1", b"1.0"]))
    status = draw(st.sampled_from([200, 201, 204, 304, 404, 500, 999]))
    reason = draw(st.sampled_from([b" OK", b"", b" ", b" Not \t Found", b" caf\xc3\xa9"]))
    body = draw(st.binary(max_size=300))
    framing = draw(st.sampled_from(["chunked", "length", "close"]))
    method = draw(st.sampled_from([b"GET", b"GET", b"HEAD"]))
    head = [b"HTTP/%b %d%b" % (version, status, reason) + draw(EOL), draw(header_lines())]
    if draw(st.booleans()):
        head.append(b"Connection: " + draw(st.sampled_from([b"close", b"Close", b"x, close"])))
        head.append(b"\r\n")
    if framing == "chunked":
        head.append(draw(st.sampled_from([b"Transfer-Encoding", b"transfer-encoding"])))
        head.append(b":" + draw(OWS) + draw(st.sampled_from([b"chunked", b"Chunked"])) + b"\r\n")
        encoded = draw(chunked_body(body))
    elif framing == "length":
        size = len(body)
        value = draw(st.sampled_from([b"%d" % size, b"%d, %d" % (size, size), b"00%d" % size]))
        repeat = draw(st.sampled_from([1, 1, 2]))
        head.extend([b"Content-Length: " + value + b"\r\n"] * repeat)
        encoded = body
    else:
        encoded = body
    head.append(draw(EOL))
    out.extend(head)
    no_body = method == b"HEAD" or status in (204, 304)
    if not no_body:
        out.append(encoded)
    close = framing == "close" and not no_body
    return b"".join(out), method, close


@st.composite
def cuts(draw: st.DrawFn, data: bytes) -> list[bytes]:
    points = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    parts = []
    last = 0
    for point in [*points, len(data)]:
        parts.append(data[last:point])
        last = point
    return parts


# -- differential -------------------------------------------------------------------------


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_response_cut_anywhere_reads_as_h11_reads_it(data: st.DataObject) -> None:
    raw, method, close = data.draw(responses())
    parts = data.draw(cuts(raw))
    expected = theirs(parts, method)
    got = ours(parts, method)
    assert expected.error is None
    assert got.head == expected.head
    assert got.body == expected.body
    if expected.head is not None and expected.head[0] == b"HTTP/1.1" and not close:
        assert got.keep_alive == expected.keep_alive


@st.composite
def mangled(draw: st.DrawFn) -> tuple[bytes, bytes]:
    raw, method, _ = draw(responses())
    pos = draw(st.integers(0, len(raw)))
    how = draw(st.sampled_from(["insert", "replace", "delete", "cut"]))
    byte = draw(st.sampled_from([b"\r", b"\n", b" ", b":", b";", b"\x00", b"\x0b", b"g", b"0"]))
    if how == "insert":
        raw = raw[:pos] + byte + raw[pos:]
    elif how == "replace":
        raw = raw[:pos] + byte + raw[pos + 1 :]
    elif how == "delete":
        raw = raw[:pos] + raw[pos + 1 :]
    else:
        raw = raw[:pos]
    return raw, method


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(mangled(), st.data())
@example((b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", b"GET"), None)
def test_a_mangled_response_fails_where_h11_fails(
    mangled: tuple[bytes, bytes], data: st.DataObject | None
) -> None:
    raw, method = mangled
    parts = [raw] if data is None else data.draw(cuts(raw))
    expected = theirs(parts, method)
    got = ours(parts, method)
    if expected.error is not None:
        assert got.error is not None, (expected.error, got)
    elif got.error is not None:  # stricter than h11 only where RFC 9112 lets a client be
        assert "obs-fold" in got.error, (got.error, expected)
    else:
        assert (got.head, got.body) == (expected.head, expected.body)


# -- fixed responses, every split -----------------------------------------------------------

FIXED = [
    (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1A \r\n" + b"z" * 26 + b"\r\n0\r\nTrailer: t\r\n\r\n",
        (b"HTTP/1.1", 200, b"OK", [(b"Transfer-Encoding", b"chunked"), (b"X-A", b"b")]),
        b"hello" + b"z" * 26,
        True,
    ),
    (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\ncontent-length: 5\r\n\r\nhello",
        (b"HTTP/1.1", 200, b"OK", [(b"Content-Length", b"5")]),
        b"hello",
        True,
    ),
    (
        b"HTTP/1.0 200 OK\nServer: old\n\nuntil the close",
        (b"HTTP/1.0", 200, b"OK", [(b"Server", b"old")]),
        b"until the close",
        False,
    ),
    (
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
        (b"HTTP/1.0", 200, b"OK", [(b"Connection", b"keep-alive"), (b"Content-Length", b"2")]),
        b"ok",
        True,
    ),
    (
        b"HTTP/1.1 404\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        (b"HTTP/1.1", 404, b"", [(b"Connection", b"close"), (b"Content-Length", b"0")]),
        b"",
        False,
    ),
]


@pytest.mark.parametrize(("raw", "head", "body", "keep_alive"), FIXED)
def test_fixed_responses_read_the_same_however_they_are_cut(
    raw: bytes, head: object, body: bytes, keep_alive: bool
) -> None:
    for parts in [whole(raw), byte_at_a_time(raw), *every_split(raw)]:
        assert ours(parts) == Read(head, body, None, keep_alive)  # type: ignore[arg-type]


def test_body_bytes_come_in_one_piece_per_read() -> None:
    parser = ResponseParser()
    head = parser.feed_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert head is not None
    read = b"3\r\nabc\r\n2\r\nde\r\n3\r\nfg"
    assert parser.feed_body(read) == b"abcdefg"  # several chunks: joined
    mid = b"hi" * 100
    parser2 = ResponseParser()
    parser2.feed_head(b"HTTP/1.1 200 OK\r\ncontent-length: 9999\r\n\r\n")
    assert parser2.feed_body(mid) is mid  # all body: the read itself
    assert parser.feed_body(b"h\r\n0\r\n\r\n") == b"h"
    assert parser.done


def test_what_follows_the_response_is_leftover_and_no_body_for_head_204_304() -> None:
    parser = ResponseParser(b"HEAD")
    head = parser.feed_head(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nextra")
    assert head is not None
    assert parser.done
    assert parser.feed_body(b"") == b""
    assert parser.leftover == b"extra"
    for status in (204, 304):
        parser = ResponseParser()
        assert parser.feed_head(b"HTTP/1.1 %d X\r\n\r\n" % status) is not None
        assert parser.done
        assert parser.keep_alive
    parser = ResponseParser()
    parser.feed_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
    assert parser.feed_body(b"okHTTP") == b"ok"
    assert parser.leftover == b"HTTP"


def test_transfer_coding_must_be_chunked_alone() -> None:
    parser = ResponseParser()
    parser.feed_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n")
    assert parser.feed_body(b"2\r\nab\r\n0\r\n\r\n") == b"ab"
    assert parser.done
    for codings in (b"gzip", b"chunked, gzip", b", chunked", b"gzip, chunked", b"chunked, chunked"):
        with pytest.raises(ParseError, match="unsupported Transfer-Encoding"):
            ResponseParser().feed_head(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: %b\r\n\r\n" % codings
            )


ERRORS = [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "conflicting Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "conflicting"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: " + b"1" * 21 + b"\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nX: a\r\n  folded\r\n\r\n", "obs-fold"),
    (b"HTTP/1.1 200 OK\r\nX a\r\n\r\n", "illegal header line"),
    (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", "illegal header line"),
    (b"HTTP/1.1 20 OK\r\n\r\n", "illegal status line"),
    (b"HTTP/1.1 099 Low\r\n\r\n", "illegal status code"),
    (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
    (b"ICY 200 OK\r\n", "illegal status line"),
    (b"\nHTTP/1.1 200 OK\r\n\r\n", "no response line"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n", "illegal chunk header"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\n", "illegal chunk header"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n 1\r\n", "illegal chunk header"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", "chunk footer"),
    (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT\r\n\r\n",
        "illegal header line",
    ),
    (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * (MAX_HEAD // 6), "longer than 65536"),
    (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * MAX_CHUNK_LINE,
        "chunk size line is too long",
    ),
    (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        + b"T: x\r\n" * (MAX_TRAILERS // 5),
        "trailers are longer",
    ),
    (b"HTTP/1.1 200 OK\r\n", "Server disconnected without sending a response."),
    (
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        "peer closed connection without sending complete message body "
        "(received 3 bytes, expected 10)",
    ),
    (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        "peer closed connection without sending complete message body (incomplete chunked read)",
    ),
]


@pytest.mark.parametrize(("raw", "message"), ERRORS)
def test_malformed_oversized_or_cut_responses_are_parse_errors(raw: bytes, message: str) -> None:
    for parts in (whole(raw), byte_at_a_time(raw)):
        got = ours(parts)
        assert got.error is not None
        assert message in got.error


def test_after_an_error_the_parser_refuses_input() -> None:
    parser = ResponseParser()
    with pytest.raises(ParseError):
        parser.feed_head(b"nope\r\n\r\n")
    with pytest.raises(ParseError, match="malformed before"):
        parser.feed_head(b"HTTP/1.1 200 OK\r\n\r\n")
    with pytest.raises(ParseError, match="malformed before"):
        parser.feed_body(b"x")
    with pytest.raises(ParseError, match="malformed before"):
        parser.feed_eof()
    fresh = ResponseParser()
    with pytest.raises(ParseError, match="not expecting a response body"):
        fresh.feed_body(b"x")


def test_split_gives_one_chunk_per_call_and_holds_the_rest() -> None:
    parser = ResponseParser()
    parser.feed_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc")
    parser.split = True
    assert parser.held
    got = [parser.feed_body(b"")]
    assert parser.held
    got.append(parser.feed_body(b""))
    assert not parser.held
    got.append(parser.feed_body(b"\r\n3\r\ndef\r\n1\r\ng\r\n0\r\n\r\n"))
    while parser.held:
        got.append(parser.feed_body(b""))
    assert got == [b"ab", b"c", b"def", b"g", b""]  # the last: the end, no data
    assert parser.done
