"""A sans-I/O HTTP/1.1 response reader: bytes in, a response head then body bytes out.

One ``ResponseParser`` per request on a connection: ``feed_head`` until it returns
the ``ResponseHead`` (1xx interim responses are skipped, 101 is refused), then
``feed_body`` once per network read until ``done``; ``feed_eof`` when the peer
closes.  ``feed_body`` hands the body bytes of a read out in one piece: the read
itself while it is all body, a slice for one chunk's data, one join when a read
holds several chunks (with ``split``: one chunk's data per call, the rest ``held``).

Framing follows RFC 9112 section 6.3: no body for HEAD, 204, 304 (and a 2xx to
CONNECT); a ``Transfer-Encoding`` of chunked alone (extensions ignored,
trailers read and dropped; any other coding is refused, as h11 refuses it: a
body this reader could frame but not decode would reach the caller garbled);
else ``Content-Length`` (invalid or conflicting values are an error); else the
body runs until the peer closes.
The syntax is checked where h11 checks it (status line, header lines, chunk
size lines, the CRLF after each chunk's data); obs-fold is refused.  The head,
a chunk size line and the trailers are bounded.  Every failure is a
``ParseError``, after which the parser refuses further input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NoReturn

__all__ = [
    "MAX_CHUNK_LINE",
    "MAX_HEAD",
    "MAX_TRAILERS",
    "ParseError",
    "ResponseHead",
    "ResponseParser",
]

MAX_HEAD = 64 * 1024
"""Bytes a response head (status line and header lines) may take."""
MAX_CHUNK_LINE = 4096
"""Bytes a chunk size line (hex size and extensions) may take."""
MAX_TRAILERS = 8192
"""Bytes the trailer section of a chunked body may take."""

# RFC 9110/9112 as h11 spells them (``\s`` on bytes: space, \t, \n, \r, \f, \v).
_FIELD_VCHAR = rb"[^\x00\s]"
_HEADER_LINE = re.compile(
    rb"([-!#$%&'*+.^_`|~0-9a-zA-Z]+):[ \t]*((?:"
    + _FIELD_VCHAR
    + rb"+(?:[ \t]+"
    + _FIELD_VCHAR
    + rb"+)*)?)[ \t]*"
)
_STATUS_LINE = re.compile(rb"HTTP/([0-9]\.[0-9]) ([0-9]{3})(?: ((?:[ \t]|[^\x00\s])*))?")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*")
_HEXDIG = b"0123456789abcdefABCDEF"
_DIGITS = re.compile(rb"[0-9]{1,20}")
_BLANK_LINE = re.compile(rb"\n\r?\n")

# Body modes (ints: compared on every read).
_HEAD = 0
_LENGTH = 1
_CHUNKED = 2
_CLOSE = 3
_DONE = 4
_FAILED = 5

# Where a chunked body is.
_SIZE = 0  # before a chunk size line
_DATA = 1  # inside a chunk's data
_FOOTER = 2  # before the CRLF after a chunk's data
_TRAILERS = 3  # after the last chunk


class ParseError(Exception):
    """The response broke HTTP/1.1's syntax or framing, or a bound."""


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A final response's status line and header lines, as received.

    ``Content-Length`` values come normalised (one value, a repeat dropped) and
    ``Transfer-Encoding`` values lower-cased, as h11 gives them."""

    http_version: bytes
    """As ``b"HTTP/1.1"``."""
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]


def _comma_tokens(value: bytes) -> list[bytes]:
    return [part.strip().lower() for part in value.split(b",")]


def _header_lines(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    """The (name, value) pairs of header lines (CR already dropped)."""
    headers = []
    for line in lines:
        match = _HEADER_LINE.fullmatch(line)
        if match is None:
            if line[:1] in (b" ", b"\t"):
                raise ParseError(f"obs-fold (a continued header line) is refused: {line!r}")
            raise ParseError(f"illegal header line: {line!r}")
        headers.append((match[1], match[2]))
    return headers


def _lines(content: bytes) -> list[bytes]:
    """``content`` split at LF, each line without its CR (h11 takes either ending)."""
    return [line[:-1] if line.endswith(b"\r") else line for line in content.split(b"\n")]


class ResponseParser:
    """The reading side of one request/response exchange (see the module docstring)."""

    __slots__ = (
        "_head_buf",
        "_method",
        "_mode",
        "_pending",
        "_received",
        "_remaining",
        "_searched",
        "_state",
        "done",
        "error",
        "held",
        "keep_alive",
        "leftover",
        "split",
    )

    def __init__(self, method: bytes = b"GET") -> None:
        self._method = method
        self._mode = _HEAD
        self._head_buf = bytearray()
        self._searched = 0
        self._pending = b""  # bytes taken but not yet parsed
        self._remaining = 0  # body bytes left (Content-Length) or of this chunk's data
        self._received = 0  # body bytes of a Content-Length body so far
        self._state = _SIZE
        self.done = False
        """The response (head and body) has been read whole."""
        self.keep_alive = False
        """The connection may carry the next request once this body is done."""
        self.held = False
        """Body bytes are waiting to be given out: ``feed_body(b"")`` before the next read."""
        self.split = False
        """Give a chunked body out at most one chunk's data per call (the rest ``held``)."""
        self.leftover = b""
        """Bytes received after the end of the response (none on a healthy connection)."""
        self.error: ParseError | None = None

    # -- the head ---------------------------------------------------------------------

    def feed_head(self, data: bytes) -> ResponseHead | None:
        """Take ``data``; the final response's head once it is complete, else None.
        Body bytes after the head are kept for the first ``feed_body``."""
        if self._mode != _HEAD:
            self._refuse("a response head")
        buf = self._head_buf
        buf += data
        while True:
            if buf[:1] == b"\n" or buf[:2] == b"\r\n":
                return self._fail("no response line received")
            match = _BLANK_LINE.search(buf, self._searched)
            if match is None:
                if len(buf) > MAX_HEAD:
                    return self._fail(f"the response head is longer than {MAX_HEAD} bytes")
                if not b"HTTP/".startswith(buf[:5]):
                    return self._fail(f"illegal status line: {bytes(buf[:40])!r}")
                self._searched = max(0, len(buf) - 2)
                return None
            end = match.end()
            if end > MAX_HEAD:
                return self._fail(f"the response head is longer than {MAX_HEAD} bytes")
            content = bytes(buf[: match.start()])
            del buf[:end]
            self._searched = 0
            try:
                head = self._head(content)
            except ParseError as exc:
                return self._fail(str(exc))
            if head is not None:
                self._pending = bytes(buf)
                self.held = bool(buf)
                buf.clear()
                if self._mode == _DONE and self._pending:
                    self.leftover, self._pending = self._pending, b""
                return head
            if not buf:
                return None

    def _head(self, content: bytes) -> ResponseHead | None:
        """The head in ``content`` (its lines), or None for an interim response."""
        lines = _lines(content)
        status_line = _STATUS_LINE.fullmatch(lines[0])
        if status_line is None:
            raise ParseError(f"illegal status line: {lines[0]!r}")
        version, code, reason = status_line.groups()
        status = int(code)
        headers = _header_lines(lines[1:])
        if status < 100:
            raise ParseError(f"illegal status code: {status}")
        if status < 200:
            if status == 101:
                raise ParseError("101 Switching Protocols is not supported here")
            return None
        headers = self._frame(status, version, headers)
        return ResponseHead(b"HTTP/" + version, status, reason or b"", headers)

    def _frame(
        self, status: int, version: bytes, headers: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """Decide the body's framing and keep-alive; the headers as given out."""
        length: bytes | None = None
        codings: list[bytes] = []
        connection: list[bytes] = []
        out = []
        for name, value in headers:
            lower = name.lower()
            if lower == b"content-length":
                values = {part.strip() for part in value.split(b",")}
                if len(values) != 1:
                    raise ParseError("conflicting Content-Length headers")
                value = values.pop()
                if _DIGITS.fullmatch(value) is None:
                    raise ParseError(f"bad Content-Length: {value!r}")
                if length is not None:
                    if value != length:
                        raise ParseError("conflicting Content-Length headers")
                    continue  # the same value again: dropped, as h11 does
                length = value
            elif lower == b"transfer-encoding":
                value = value.lower()
                codings += _comma_tokens(value)
            elif lower == b"connection":
                connection += _comma_tokens(value)
            out.append((name, value))
        if codings and codings != [b"chunked"]:  # no other coding could be undone here
            raise ParseError(f"unsupported Transfer-Encoding: {b', '.join(codings)!r}")
        method = self._method
        if method == b"HEAD" or status in (204, 304) or (method == b"CONNECT" and status < 300):
            self._mode = _DONE
            self.done = True
        elif codings:
            self._mode = _CHUNKED
        elif length is not None:
            self._remaining = int(length)
            self._mode = _LENGTH if self._remaining else _DONE
            self.done = not self._remaining
        else:
            self._mode = _CLOSE
        if version >= b"1.1":
            keep_alive = b"close" not in connection
        else:
            keep_alive = b"keep-alive" in connection and b"close" not in connection
        self.keep_alive = keep_alive and self._mode != _CLOSE and method != b"CONNECT"
        return out

    # -- the body ---------------------------------------------------------------------

    def feed_body(self, data: bytes) -> bytes:
        """Take one read's ``data``; the body bytes in it (and in what came before),
        in one piece.  ``feed_body(b"")`` gives what came with the head."""
        pending = self._pending
        if pending:
            data = pending + data
            self._pending = b""
            self.held = False
        mode = self._mode
        if mode == _CHUNKED:
            return self._chunked(data)
        if mode == _LENGTH:
            remaining = self._remaining
            size = len(data)
            if size < remaining:
                self._remaining = remaining - size
                self._received += size
                return data
            self._remaining = 0
            self._mode = _DONE
            self.done = True
            if size == remaining:
                return data
            self.leftover = data[remaining:]
            return data[:remaining]
        if mode == _CLOSE:
            return data
        if mode == _DONE:
            self.leftover += data
            return b""
        self._refuse("a response body")

    def _chunked(self, data: bytes) -> bytes:
        end = len(data)
        pos = 0
        remaining = self._remaining
        state = self._state
        first = b""
        parts: list[bytes] | None = None
        split = self.split
        while pos < end:
            if state == _DATA:
                stop = pos + remaining
                if stop >= end:  # the read ends inside this chunk
                    piece = data[pos:] if pos else data
                    remaining = stop - end
                    pos = end
                    if not remaining:
                        state = _FOOTER
                else:
                    piece = data[pos:stop]
                    pos = stop
                    remaining = 0
                    state = _FOOTER
                if not first:
                    first = piece
                elif parts is None:
                    parts = [first, piece]
                else:
                    parts.append(piece)
                if split and pos < end:
                    self._pending = data[pos:]
                    self.held = True
                    break
            elif state == _SIZE:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    if end - pos > MAX_CHUNK_LINE:
                        return self._fail("a chunk size line is too long")
                    self._pending = data[pos:]
                    break
                if eol - pos > MAX_CHUNK_LINE:
                    return self._fail("a chunk size line is too long")
                size = data[pos:eol]
                if size and len(size) <= 20 and not size.strip(_HEXDIG):  # hex alone: no regex
                    remaining = int(size, 16)
                else:
                    size_line = _CHUNK_SIZE.fullmatch(size)
                    if size_line is None:
                        return self._fail(f"illegal chunk header: {data[pos : eol + 2]!r}")
                    remaining = int(size_line[1], 16)
                pos = eol + 2
                state = _DATA if remaining else _TRAILERS
            elif state == _FOOTER:
                if data.startswith(b"\r\n", pos):
                    pos += 2
                    state = _SIZE
                elif end - pos == 1 and data[pos] == 13:  # the CR now, the LF next read
                    self._pending = b"\r"
                    break
                else:
                    footer = data[pos : pos + 2]
                    return self._fail(f"malformed chunk footer: {footer!r} (expected b'\\r\\n')")
            else:
                pos = self._trailers(data, pos)
                if self._mode == _DONE:
                    self.leftover = data[pos:]
                break
        self._remaining = remaining
        self._state = state
        if parts is not None:
            return b"".join(parts)
        return first

    def _trailers(self, data: bytes, pos: int) -> int:
        """Read (and drop) the trailer section at ``pos``; where it ends, or ``len(data)``
        with the start kept for the next read."""
        if data.startswith(b"\r\n", pos):
            self._mode = _DONE
            self.done = True
            return pos + 2
        if data.startswith(b"\n", pos):
            self._mode = _DONE
            self.done = True
            return pos + 1
        match = _BLANK_LINE.search(data, pos)
        if match is None or match.end() - pos > MAX_TRAILERS:
            if len(data) - pos > MAX_TRAILERS:
                self._fail(f"the trailers are longer than {MAX_TRAILERS} bytes")
            self._pending = data[pos:]
            return len(data)
        try:
            _header_lines(_lines(data[pos : match.start()]))
        except ParseError as exc:
            self._fail(str(exc))
        self._mode = _DONE
        self.done = True
        return match.end()

    # -- the end ----------------------------------------------------------------------

    def feed_eof(self) -> None:
        """The peer closed the connection: ends a body that runs until then, else
        raises ``ParseError`` unless the response was complete."""
        mode = self._mode
        if mode == _CLOSE:
            self._mode = _DONE
            self.done = True
        elif mode == _HEAD:
            self._fail("Server disconnected without sending a response.")
        elif mode == _LENGTH:
            received = self._received
            self._fail(
                "peer closed connection without sending complete message body "
                f"(received {received} bytes, expected {received + self._remaining})"
            )
        elif mode == _CHUNKED:
            self._fail(
                "peer closed connection without sending complete message body "
                "(incomplete chunked read)"
            )
        elif mode == _FAILED:
            self._refuse("the end")

    def _fail(self, message: str) -> NoReturn:
        self._mode = _FAILED
        self.keep_alive = False
        self.error = ParseError(message)
        raise self.error

    def _refuse(self, expected: str) -> NoReturn:
        if self.error is not None:
            raise ParseError(f"the response was malformed before: {self.error}")
        raise ParseError(f"not expecting {expected} now")
