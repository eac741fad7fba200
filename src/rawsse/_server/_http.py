"""HTTP/1.1 on asyncio streams, server side: read one request, write a response.

Enough of RFC 9112 for a local API server: request line and headers (bounded),
Content-Length and chunked request bodies (bounded), ``Expect: 100-continue``,
keep-alive, chunked responses.  A request we cannot serve raises ``BadRequest``,
answered with an OpenRouter-shaped JSON error; a client that leaves raises
``ClientGone``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
from collections.abc import Iterable

__all__ = [
    "CORS",
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
CORS = (("access-control-allow-origin", "*"), ("access-control-expose-headers", "*"))


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
) -> None:
    """A whole JSON response (``head``: the head only, for HEAD requests)."""
    headers = [
        ("content-type", "application/json"),
        ("content-length", str(len(data))),
        ("server", "rawsse"),
        *CORS,
    ]
    if status == 405:
        headers.append(("allow", "GET, POST, OPTIONS"))
    if close:
        headers.append(("connection", "close"))
    writer.write(response_head(status, headers) + (b"" if head else data))
    with contextlib.suppress(ConnectionError):
        await writer.drain()


def response_head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}"]
    lines += [f"{name}: {value}" for name, value in headers]
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
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    length_text = headers.get("content-length")
    if not chunked and length_text is None:
        return b""
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    try:
        if chunked or length_text is None:
            return await _read_chunked(reader)
        if not length_text.isdigit():
            raise BadRequest(400, f"bad Content-Length: {length_text!r}", close=True)
        length = int(length_text)
        if length > MAX_BODY:
            raise BadRequest(413, f"request body over {MAX_BODY} bytes", close=True)
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ClientGone from None


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError:
            raise BadRequest(400, "bad chunk size line", close=True) from None
        size_text = line[:-2].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadRequest(400, "bad chunk size line", close=True) from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers: ignored
                pass
            return bytes(body)
        if len(body) + size > MAX_BODY:
            raise BadRequest(413, f"request body over {MAX_BODY} bytes", close=True)
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise BadRequest(400, "bad chunk framing", close=True)
