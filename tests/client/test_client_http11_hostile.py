"""A hostile upstream's HTTP/1.1 framing, through the async client's own connection:
every bound ends the stream with rawsse's own error, at once, and a body's text
received so far stays in ``.partial``; asyncio and trio, over real TCP."""

from __future__ import annotations

import asyncio
import time

import pytest

import rawsse
from rawsse._http11_parse import MAX_CHUNK_LINE, MAX_HEAD, MAX_TRAILERS
from tests.client.test_client_asyncio_transport import Plain
from tests.server import KEY, chunk

pytestmark = pytest.mark.anyio

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def endless(first: bytes, piece: bytes) -> object:
    """Sends ``first``, then ``piece`` forever (until the client leaves)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(first)
        for _ in range(100_000):
            writer.write(piece)
            await writer.drain()

    return handler


def framed(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


async def read_all(port: int) -> rawsse.ChatResult:
    url = f"http://127.0.0.1:{port}/api/v1"
    async with rawsse.AsyncClient(base_url=url, api_key=KEY, retries=0) as client:
        stream = client.stream(model="m", messages=[{"role": "user", "content": "hi"}])
        async with stream:
            return await stream.final()


async def test_an_endless_head_is_refused_at_its_bound() -> None:
    head = b"HTTP/1.1 200 OK\r\n"
    with Plain(endless(head, b"x-flood: " + b"y" * 1000 + b"\r\n")) as server:  # type: ignore[arg-type]
        started = time.monotonic()
        with pytest.raises(rawsse.APIConnectionError) as caught:
            await read_all(server.port)
    assert "head" in str(caught.value).lower()
    assert time.monotonic() - started < 5
    assert MAX_HEAD == 64 * 1024


@pytest.mark.parametrize(
    ("piece", "bound"),
    [(b"f", MAX_CHUNK_LINE), (b"x-trailer: " + b"z" * 100 + b"\r\n", MAX_TRAILERS)],
    ids=["chunk-size line", "trailers"],
)
async def test_an_endless_body_line_ends_the_stream_with_its_partial(
    piece: bytes, bound: int
) -> None:
    first = HEAD + framed(chunk(content="Hello")) + (b"0\r\n" if bound == MAX_TRAILERS else b"")
    with (
        Plain(endless(first, piece)) as server,  # type: ignore[arg-type]
        pytest.raises(rawsse.IncompleteStreamError) as caught,
    ):
        await read_all(server.port)
    assert caught.value.partial is not None
    assert caught.value.partial.text == "Hello"
    assert KEY not in str(caught.value)
