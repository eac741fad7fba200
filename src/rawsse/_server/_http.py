"""HTTP/1.1 on asyncio streams, server side: read one request, write a response.

Enough of RFC 9112 for a local API server: request line and headers (bounded),
Content-Length and chunked request bodies (bounded), ``Expect: 100-continue``,
keep-alive, chunked responses.  A request we cannot serve raises ``BadRequest``,
answered with an OpenRouter-shaped JSON error; a client that leaves raises
``ClientGone``.

Framing is strict, so no request can be read two ways (RFC 9112 section 6.3):
``Content-Length`` is ASCII digits only; ``Transfer-Encoding`` must be exactly
``chunked`` (anything else is a 501) and may not come with a ``Content-Length``
(a 400); chunk sizes are 1 to 8 hex digits, no sign, no ``0x``; the trailer
section is bounded like the head.  Every framing error closes the connection.
Response heads drop any header whose name is not a token or whose value holds a
control character, so nothing served can add a header of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import re
from collections.abc import Iterable

__all__ = [
    "MAX_BODY",
    "MAX_HEAD",
    "BadRequest",
    "ClientGone",
    "error_body",
    "keep_alive",
    "parse_head",
    "read_body",
    "response_head",
    "send_json",
    "write_chunk",
]

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024

_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,8})[ \t]*(?:;.*)?")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A header value may hold visible ASCII, spaces, tabs and obs-text; CR, LF, NUL,
# the other C0 controls and DEL could end the line or the head.
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class BadRequest(Exception):
    """A request we answer with an OpenRouter-shaped JSON error."""

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


class ClientGone(Exception):
    """The client closed the connection."""


def error_body(status: int, message: str) -> bytes:
    """``{"error": {"code": status, "message": message}}`` as bytes."""
    return json.dumps({"error": {"code": status, "message": message}}).encode("utf-8")


async def send_json(
    writer: asyncio.StreamWriter,
    status: int,
    data: bytes,
    close: bool,
    *,
    head: bool = False,
    cors: Iterable[tuple[str, str]] = (),
) -> None:
    """A whole JSON response (``head``: the head only, for HEAD requests)."""
    headers = [
        ("content-type", "application/json"),
        ("content-length", str(len(data))),
        ("server", "rawsse"),
        *cors,
    ]
    if status == 405:
        headers.append(("allow", "GET, POST, OPTIONS"))
    if close:
        headers.append(("connection", "close"))
    writer.write(response_head(status, headers) + (b"" if head else data))
    with contextlib.suppress(ConnectionError):
        await writer.drain()


def response_head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    """The status line and header lines; a header that could break the head is left out."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}"]
    lines += [
        f"{name}: {value}"
        for name, value in headers
        if _TOKEN.fullmatch(name) and not _BAD_VALUE.search(value)
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


async def write_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    if data:
        writer.write(b"%x\r\n%b\r\n" % (len(data), data))
        await writer.drain()


def parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise BadRequest(400, "bad request head", close=True) from None
    lines = text[:-4].split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1]:
        raise BadRequest(400, f"bad request line: {lines[0][:100]!r}", close=True)
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, f"bad header line: {line[:100]!r}", close=True)
        name = name.lower()
        value = value.strip(" \t")
        if name in headers:
            if name == "content-length" and headers[name] != value:
                raise BadRequest(400, "conflicting Content-Length headers", close=True)
            headers[name] = f"{headers[name]}, {value}"
            if name == "content-length":
                headers[name] = value
        else:
            headers[name] = value
    return method, target, version, headers


def keep_alive(version: str, headers: dict[str, str]) -> bool:
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


async def read_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str]
) -> bytes:
    """The request body, framed by ``Transfer-Encoding: chunked`` or ``Content-Length``."""
    coding = headers.get("transfer-encoding")
    length_text = headers.get("content-length")
    if coding is not None:
        if length_text is not None:
            raise BadRequest(
                400, "a request may not have both Content-Length and Transfer-Encoding", close=True
            )
        if coding.strip(" \t").lower() != "chunked":
            message = f"Transfer-Encoding {coding[:100]!r} is not supported (only chunked)"
            raise BadRequest(501, message, close=True)
    elif length_text is None:
        return b""
    elif not _CONTENT_LENGTH.fullmatch(length_text):
        raise BadRequest(400, f"bad Content-Length: {length_text[:100]!r}", close=True)
    elif int(length_text) > MAX_BODY:
        raise BadRequest(413, f"request body over {MAX_BODY} bytes", close=True)
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    try:
        if coding is not None:
            return await _read_chunked(reader)
        return await reader.readexactly(int(length_text or 0))
    except asyncio.IncompleteReadError:
        raise ClientGone from None


async def _read_line(reader: asyncio.StreamReader, what: str) -> bytes:
    try:
        return await reader.readuntil(b"\r\n")
    except asyncio.LimitOverrunError:
        raise BadRequest(400, f"{what} too long", close=True) from None


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        line = await _read_line(reader, "chunk size line")
        match = _CHUNK_SIZE.fullmatch(line[:-2])
        if match is None:
            raise BadRequest(400, f"bad chunk size line: {line[:40]!r}", close=True)
        size = int(match[1], 16)
        if size == 0:
            break
        if len(body) + size > MAX_BODY:
            raise BadRequest(413, f"request body over {MAX_BODY} bytes", close=True)
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise BadRequest(400, "bad chunk framing", close=True)
    trailers = 0  # ignored, but bounded like the head
    while (line := await _read_line(reader, "trailer line")) != b"\r\n":
        trailers += len(line)
        if trailers > MAX_HEAD:
            raise BadRequest(431, f"trailer section over {MAX_HEAD} bytes", close=True)
    return bytes(body)
