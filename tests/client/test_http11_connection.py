"""``Http11Connection`` over real TCP, on asyncio and trio, through ``AsyncioTransport``.

Servers answer with exact bytes; the tests check what the client makes of them
(status, headers, body) and which connection carried each request.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

import anyio
import anyio.lowlevel
import httpcore
import httpx
import pytest

from rawsse._asyncio_transport import AsyncioBackend, AsyncioTransport
from rawsse._http11 import ConnectionSettings, Http11Connection, Http11Pool
from rawsse._http11_parse import MAX_HEAD
from rawsse._httpx_adapter import DEFAULT_LIMITS
from tests.client.test_client_asyncio_transport import (
    Handler,
    Plain,
    certificate,  # noqa: F401 - the fixture, shared
    lean,
    read_request,
)

pytestmark = pytest.mark.anyio


def answering(*answers: bytes, then_close: bool = False) -> Handler:
    """Answers the requests on each connection with ``answers`` in turn."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            await read_request(reader)
            writer.write(answer)
            await writer.drain()
        if not then_close:
            await reader.read()  # until the client leaves

    return handler


def ok(body: bytes, *extra: bytes) -> bytes:
    head = b"".join(b"%b\r\n" % line for line in extra)
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%b\r\n%b" % (len(body), head, body)


async def get_all(url: str, *methods: str) -> list[httpx.Response]:
    async with lean() as client:
        return [await client.request(method, url) for method in methods]


# -- keep-alive ------------------------------------------------------------------------------


async def test_a_keep_alive_connection_carries_the_next_request() -> None:
    with Plain(answering(ok(b"one"), ok(b"two", b"x-n: 2"))) as server:
        first, second = await get_all(f"http://127.0.0.1:{server.port}/", "GET", "GET")
    assert [first.text, second.text] == ["one", "two"]
    assert second.headers["x-n"] == "2"
    assert first.extensions["http_version"] == b"HTTP/1.1"
    assert first.extensions["reason_phrase"] == b"OK"
    assert len(server.peers) == 1


@pytest.mark.parametrize(
    ("answer", "reused"),
    [
        (ok(b"bye", b"Connection: close"), False),
        (b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\nold", False),
        (b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\nconnection: keep-alive\r\n\r\nold", True),
    ],
)
async def test_connection_close_and_http_1_0_decide_reuse(answer: bytes, reused: bool) -> None:
    with Plain(answering(answer, answer)) as server:
        first, second = await get_all(f"http://127.0.0.1:{server.port}/", "GET", "GET")
    assert first.content == second.content == answer.rpartition(b"\r\n\r\n")[2]
    assert len(server.peers) == (1 if reused else 2)


async def test_a_body_until_the_close_is_read_whole_and_the_connection_not_reused() -> None:
    answer = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it, until the close"
    with Plain(answering(answer, then_close=True)) as server:
        first, second = await get_all(f"http://127.0.0.1:{server.port}/", "GET", "GET")
    assert first.content == second.content == b"all of it, until the close"
    assert len(server.peers) == 2


async def test_interim_responses_are_skipped_and_head_and_204_have_no_body() -> None:
    early = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n"
    answers = [
        early + ok(b"final"),
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n",  # HEAD: no body follows
        b"HTTP/1.1 204 No Content\r\n\r\n",
        ok(b"last"),
    ]
    with Plain(answering(*answers)) as server:
        got = await get_all(f"http://127.0.0.1:{server.port}/", "GET", "HEAD", "DELETE", "GET")
    assert [(r.status_code, r.content) for r in got] == [
        (200, b"final"),
        (200, b""),
        (204, b""),
        (200, b"last"),
    ]
    assert got[1].headers["content-length"] == "10"
    assert len(server.peers) == 1


# -- request bodies -----------------------------------------------------------------------------


async def test_a_streamed_request_body_is_chunk_encoded() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        seen.append(await reader.readuntil(b"0\r\n\r\n"))
        writer.write(ok(b"thanks"))
        await writer.drain()
        await reader.read()

    async def parts() -> AsyncIterator[bytes]:
        yield b"hello "
        yield b""
        yield b"world" * 3

    with Plain(handler) as server:
        async with lean() as client:
            response = await client.post(f"http://127.0.0.1:{server.port}/up", content=parts())
    assert response.text == "thanks"
    assert seen[0].startswith(b"POST /up HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nTransfer-Encoding: chunked\r\n" in seen[0]
    assert seen[1] == b"6\r\nhello \r\nf\r\n" + b"world" * 3 + b"\r\n0\r\n\r\n"


async def test_an_early_answer_is_read_though_the_request_body_could_not_be_written() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(ok(b"too large", b"connection: close"))
        await writer.drain()
        await reader.readexactly(1 << 20)  # the client has read the answer meanwhile
        writer.transport.abort()  # unread bytes: the client sees a reset

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(2000):
            yield b"x" * 65536
            await anyio.lowlevel.checkpoint()

    with Plain(handler) as server:
        async with lean() as client:
            response = await client.post(f"http://127.0.0.1:{server.port}/", content=endless())
    assert (response.status_code, response.text) == (200, "too large")


async def test_a_request_body_the_server_never_reads_ends_at_the_write_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(10)  # reads nothing more: the client's writes block

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(4000):
            yield b"x" * 65536

    with Plain(handler) as server:
        async with lean(timeout=httpx.Timeout(5.0, write=0.3)) as client:
            started = time.monotonic()
            with pytest.raises(httpx.WriteTimeout):
                await client.post(f"http://127.0.0.1:{server.port}/", content=endless())
            assert time.monotonic() - started < 4.0


# -- broken responses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
            "peer closed connection without sending complete message body "
            "(incomplete chunked read)",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhel",
            "peer closed connection without sending complete message body "
            "(received 3 bytes, expected 10)",
        ),
        (b"HTTP/1.1 200 OK\r\n" + b"x-big: yyyy\r\n" * (MAX_HEAD // 13), "longer than 65536"),
        (b"HTTP/1.1 200 OK\r\nx", "Server disconnected without sending a response."),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
    ],
)
async def test_a_cut_or_malformed_response_is_a_remote_protocol_error(
    answer: bytes, message: str
) -> None:
    with Plain(answering(answer, then_close=True)) as server:
        async with lean() as client:
            with pytest.raises(httpx.RemoteProtocolError) as caught:
                await client.get(f"http://127.0.0.1:{server.port}/")
            assert message in str(caught.value)
            assert isinstance(caught.value.__cause__, httpcore.RemoteProtocolError)


async def test_closing_a_body_before_its_end_closes_the_connection() -> None:
    times: list[float] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await reader.read()  # until the client leaves
        times.append(time.monotonic())

    with Plain(handler) as server:
        origin = httpcore.Origin(b"http", b"127.0.0.1", server.port)
        connection = Http11Connection(origin, ConnectionSettings(AsyncioBackend()))
        url = f"http://127.0.0.1:{server.port}/"
        request = httpcore.Request("GET", url, headers=[(b"Host", b"127.0.0.1")])
        response = await connection.handle_async_request(request)
        assert isinstance(response.stream, AsyncIterable)
        assert await anext(aiter(response.stream)) == b"first"
        await response.aclose()  # before the end of the body
        closed = time.monotonic()
        assert connection.is_closed()
        for _ in range(100):
            if times:
                break
            await anyio.sleep(0.01)
    assert times
    assert times[0] - closed < 0.5


async def test_a_body_read_whole_hands_the_connection_back_idle() -> None:
    with Plain(answering(ok(b"whole"))) as server:
        origin = httpcore.Origin(b"http", b"127.0.0.1", server.port)
        settings = ConnectionSettings(AsyncioBackend(), keepalive_expiry=5.0)
        connection = Http11Connection(origin, settings)
        url = f"http://127.0.0.1:{server.port}/"
        request = httpcore.Request("GET", url, headers=[(b"Host", b"127.0.0.1")])
        response = await connection.handle_async_request(request)
        assert not connection.is_available()
        assert [part async for part in response.stream] == [b"whole"]  # type: ignore[union-attr]
        await response.aclose()
        assert connection.is_idle()
        assert connection.is_available()
        assert not connection.has_expired()
        with pytest.raises(RuntimeError, match="Attempted to send request"):
            await connection.handle_async_request(httpcore.Request("GET", "http://other/"))
        await connection.aclose()
        assert connection.is_closed()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_pool_with_a_unix_socket_connects_there(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    settings = ConnectionSettings(AsyncioBackend(), uds=path)
    with Plain(answering(ok(b"over unix"), ok(b"again")), unix=path):
        async with Http11Pool(settings, max_connections=4, max_keepalive_connections=4) as pool:
            first = await pool.request("GET", "http://localhost/")
            second = await pool.request("GET", "http://localhost/")
            assert "IDLE, Request Count: 2" in repr(pool.connections[0])
    assert (first.content, second.content) == (b"over unix", b"again")


async def test_tls_checks_the_certificate_against_the_sni_hostname_extension(
    certificate: tuple[Path, Path],  # noqa: F811
) -> None:
    cert, key = certificate
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    trusted = ssl.create_default_context(cafile=str(cert))
    with Plain(answering(ok(b"secure"), ok(b"again")), tls=served) as server:
        transport = AsyncioTransport(limits=DEFAULT_LIMITS, ssl_context=trusted)
        async with httpx.AsyncClient(transport=transport) as client:
            url = f"https://127.0.0.1:{server.port}/"
            with pytest.raises(httpx.ConnectError):
                await client.get(url)  # the certificate names localhost
            named = {"sni_hostname": "localhost"}
            first = await client.get(url, extensions=named)
            second = await client.get(url, extensions=named)
    assert (first.text, second.text) == ("secure", "again")
    assert first.extensions["network_stream"].get_extra_info("ssl_object") is not None


async def test_an_illegal_header_value_is_named_not_shown() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()  # nothing comes: the request is refused before it is sent
        finally:
            writer.close()

    with Plain(handler) as server:
        async with lean() as client:
            with pytest.raises(httpx.LocalProtocolError) as caught:
                await client.get(
                    f"http://127.0.0.1:{server.port}/",
                    headers={"authorization": "Bearer sk-or-v1-secret\x00"},
                )
    assert "authorization" in str(caught.value)
    assert "secret" not in str(caught.value)
