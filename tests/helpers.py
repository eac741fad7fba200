"""Chunkings of a byte string, for tests that feed a stream in every way, and the
pieces of a stream that matter to an SSE parser."""

from __future__ import annotations

from collections.abc import Iterator


def whole(data: bytes) -> list[bytes]:
    """The stream in one chunk."""
    return [data]


def byte_at_a_time(data: bytes) -> list[bytes]:
    """The stream one byte per chunk."""
    return [data[i : i + 1] for i in range(len(data))]


def every_split(data: bytes) -> Iterator[list[bytes]]:
    """The stream cut in two at every position (including both ends)."""
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]


def fixed_size(data: bytes, size: int) -> list[bytes]:
    """The stream in chunks of ``size`` bytes."""
    return [data[i : i + size] for i in range(0, len(data), size)]


SSE_PIECES = [
    b"\r",
    b"\n",
    b"\r\n",
    b":",
    b" ",
    b"data:",
    b"data: ",
    b"event:",
    b"id:",
    b"retry:",
    b"\xef\xbb\xbf",
    b"\xef",
    b"\0",
    b"7",
    b"x",
    "é".encode(),
    "🌍".encode(),
    b"\xff",
    b"\xe2\x80",
    "\u2028".encode(),
]
"""Pieces that matter to an SSE parser (line ends, field names, a BOM, cut and bad
UTF-8), for generated streams that favour them over random bytes."""
