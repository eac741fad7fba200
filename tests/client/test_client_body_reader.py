"""``body_reader``: the client's own transport's bodies read without httpx's generator
layers, on asyncio and trio; any other response is read the usual way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from rawsse._asyncio_transport import body_reader
from tests.client.test_client_asyncio_transport import Plain, lean, read_request

pytestmark = pytest.mark.anyio

CHUNKED = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"


def chunked_answers(parts: list[bytes], *, cut: bool = False, stall: bool = False) -> object:
    """Answers each request on a connection with ``parts`` as chunks (``cut``: the
    connection closes after the first chunk; ``stall``: nothing follows it)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(CHUNKED)
            for part in parts:
                writer.write(b"%x\r\n%b\r\n" % (len(part), part))
                await writer.drain()
                if cut:
                    writer.close()
                    return
                if stall:
                    await reader.read()  # until the client closes
                    return
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    return handler


async def opened(
    client: httpx.AsyncClient, port: int
) -> tuple[httpx.Response, AsyncIterator[bytes]]:
    """A streamed GET and its body reader (which must exist: the client's own transport)."""
    request = client.build_request("GET", f"http://127.0.0.1:{port}/")
    response = await client.send(request, stream=True)
    reader = body_reader(response)
    assert reader is not None
    return response, reader


async def test_the_reader_gives_the_body_and_the_connection_is_reused() -> None:
    parts = [b"data: one\n\n", b"data: two\n\n"]
    with Plain(chunked_answers(parts)) as server:  # type: ignore[arg-type]
        async with lean() as client:
            for _ in range(2):
                response, reader = await opened(client, server.port)
                assert not hasattr(reader, "ag_frame")  # not a generator
                assert body_reader(response) is None  # handed out once
                got = b"".join([chunk async for chunk in reader])
                await response.aclose()
                assert got == b"".join(parts)
    assert len(server.peers) == 1


async def test_the_reader_raises_httpx_errors() -> None:
    with Plain(chunked_answers([b"data: one\n\n"], cut=True)) as server:  # type: ignore[arg-type]
        async with lean() as client:
            response, reader = await opened(client, server.port)
            assert await reader.__anext__() == b"data: one\n\n"
            with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
                await reader.__anext__()
            await response.aclose()


async def test_a_body_left_unread_closes_its_connection() -> None:
    parts = [b"data: one\n\n", b"data: two\n\n"]
    with Plain(chunked_answers(parts, stall=True)) as server:  # type: ignore[arg-type]
        async with lean() as client:
            for _ in range(2):
                response, reader = await opened(client, server.port)
                assert await reader.__anext__() == b"data: one\n\n"
                await response.aclose()
    assert len(server.peers) == 2  # the first connection was not reused


async def test_a_response_made_from_another_is_read_through_its_own_stream() -> None:
    with Plain(chunked_answers([b"data: one\n\n"])) as server:  # type: ignore[arg-type]
        async with lean() as client:
            request = client.build_request("GET", f"http://127.0.0.1:{server.port}/")
            response = await client.send(request, stream=True)
            copy = httpx.Response(  # as a recording transport wraps a response
                response.status_code,
                headers=response.headers,
                stream=response.stream,
                extensions=response.extensions,
            )
            assert body_reader(copy) is None
            assert await copy.aread() == b"data: one\n\n"
            await response.aclose()
