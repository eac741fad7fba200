"""``AsyncioTransport``: the async client's own pool, over real TCP (and TLS).

Every test runs on asyncio (the lean network stream) and on trio (httpcore's
own trio backend behind the same transport): bytes exact, connections pooled
and re-made when the server closed them, deadlines that fire, cancellation
that closes the connection, errors as httpx's and then rawsse's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import httpcore
import httpx
import pytest

import rawsse
from rawsse import ChatStatus, Timeouts
from rawsse._asyncio_transport import (
    HIGH_WATER,
    READ_DEADLINE,
    AsyncioBackend,
    AsyncioTransport,
    ReadDeadline,
    honours_read_deadline,
)
from rawsse._httpx_adapter import DEFAULT_LIMITS, ssl_context
from tests.server import DONE, KEY, Hang, Reset, Script, Send, ServerThread, chunk

pytestmark = pytest.mark.anyio

DISCONNECT_WITHIN = 0.1  # seconds: the server must see the client leave this fast

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Plain:
    """A small HTTP/1.1 server (keep-alive, Content-Length bodies), TLS optional,
    on its own loop in a thread; ``peers`` has one entry per accepted connection."""

    def __init__(
        self, handler: Handler, tls: ssl.SSLContext | None = None, unix: str | None = None
    ) -> None:
        self.peers: list[int] = []
        self._handler = handler
        self._tls = tls
        self._unix = unix
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def _run(self) -> None:
        loop = self._loop
        if self._unix is not None:
            server = loop.run_until_complete(asyncio.start_unix_server(self._serve, self._unix))
        else:
            server = loop.run_until_complete(
                asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._tls)
            )
            self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.run_forever()
        # A connection accepted in the last turn is wrapped (and its handler started)
        # in the next ones; stopped before, its socket would be left open.
        loop.run_until_complete(asyncio.sleep(0.01))
        server.close()
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0.01))
        loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peers.append(hash(writer.get_extra_info("peername")))
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
                await self._handler(reader, writer)
        finally:  # also when the server stops (the handler is cancelled)
            writer.close()

    def __enter__(self) -> Plain:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return await reader.readexactly(length)


def answer(body: bytes, *, close: bool = False) -> bytes:
    connection = b"close" if close else b"keep-alive"
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: %b\r\n\r\n%b" % (
        len(body),
        connection,
        body,
    )


def echo_length(idle: float = 10.0) -> Handler:
    """Answers every request on a connection with the length of its body; closes
    the connection after ``idle`` seconds without a request."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    body = await asyncio.wait_for(read_request(reader), idle)
                except asyncio.TimeoutError:
                    return
                writer.write(answer(b"%d" % len(body)))
                await writer.drain()
        finally:
            writer.close()

    return handler


@contextlib.asynccontextmanager
async def lean(**kwargs: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = AsyncioTransport(limits=DEFAULT_LIMITS, ssl_context=ssl_context())
    async with httpx.AsyncClient(transport=transport, **kwargs) as client:  # type: ignore[arg-type]
        yield client


# -- selection ------------------------------------------------------------------------


async def test_the_client_builds_its_pool_on_the_transport() -> None:
    client = rawsse.AsyncClient(base_url="http://127.0.0.1:9/api/v1", api_key=KEY)
    assert isinstance(client._http._transport, AsyncioTransport)
    await client.aclose()


async def test_a_callers_http_client_is_used_as_given(server: ServerThread) -> None:
    seen: list[str] = []

    class Counting(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request.url.path)
            return await super().handle_async_request(request)

    server.expect(Script(steps=[Send(chunk(content="hi") + DONE)]))
    async with (
        httpx.AsyncClient(transport=Counting()) as http,
        rawsse.AsyncClient(base_url=server.url, api_key=KEY, http_client=http) as c,
    ):
        result = await c.complete(model="m", messages=[])
    assert result.text == "hi"
    assert seen == ["/api/v1/chat/completions"]


# -- bytes, pooling ------------------------------------------------------------------


async def test_connections_are_pooled_and_remade_after_the_server_closes_them() -> None:
    with Plain(echo_length(idle=0.1)) as server:
        async with lean() as client:
            url = f"http://127.0.0.1:{server.port}/"
            first = await client.post(url, content=b"abc")
            second = await client.post(url, content=b"abcdef")  # the same connection
            await anyio.sleep(0.3)  # the server closed it meanwhile: seen as readable
            third = await client.post(url, content=b"x")
    assert [first.text, second.text, third.text] == ["3", "6", "1"]
    assert len(server.peers) == 2


async def test_a_large_body_arrives_exactly_through_the_paused_buffer() -> None:
    body = bytes(range(256)) * (4 * HIGH_WATER // 256 + 7)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(body, close=True))
        await writer.drain()

    with Plain(handler) as server:
        async with lean() as client:
            got = bytearray()
            async with client.stream("GET", f"http://127.0.0.1:{server.port}/") as response:
                async for part in response.aiter_raw():
                    got += part
                    await anyio.sleep(0.001)  # a slow reader: the buffer fills up
    assert bytes(got) == body


async def test_a_large_request_body_is_written_whole() -> None:
    with Plain(echo_length()) as server:
        async with lean() as client:
            response = await client.post(
                f"http://127.0.0.1:{server.port}/", content=b"x" * 5_000_000
            )
    assert response.text == "5000000"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("openssl cannot make a test certificate here")
    return cert, key


async def test_tls(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    trusted = ssl.create_default_context(cafile=str(cert))
    with Plain(echo_length(), tls=served) as server:
        transport = AsyncioTransport(limits=DEFAULT_LIMITS, ssl_context=trusted)
        async with httpx.AsyncClient(transport=transport) as client:
            url = f"https://localhost:{server.port}/"
            first = await client.post(url, content=b"secret")
            second = await client.post(url, content=b"again!!")
    assert [first.text, second.text] == ["6", "7"]
    assert len(server.peers) == 1


# -- errors, deadlines, cancellation --------------------------------------------------------


async def test_a_refused_connection_is_a_connect_error_then_rawsse_s() -> None:
    with Plain(echo_length()) as server:
        port = server.port
    async with lean() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")
    async with rawsse.AsyncClient(
        base_url=f"http://127.0.0.1:{port}/api/v1", api_key=KEY, retries=0
    ) as c:
        with pytest.raises(rawsse.APIConnectionError) as caught:
            await c.complete(model="m", messages=[])
    assert KEY not in str(caught.value)


async def test_httpcore_s_read_timeout_fires(server: ServerThread) -> None:
    server.expect(Script(steps=[Send(chunk(content="a")), Hang()]))
    async with (
        lean(timeout=httpx.Timeout(5.0, read=0.2)) as client,
        client.stream("POST", server.url + "/chat/completions") as response,
    ):
        parts = response.aiter_raw()
        assert b"a" in await parts.__anext__()
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await parts.__anext__()
    assert 0.15 < time.monotonic() - started < 2.0
    server.wait_disconnect()


async def test_rawsse_s_idle_deadline_fires_and_closes_the_connection(
    server: ServerThread,
) -> None:
    server.expect(Script(steps=[Send(chunk(content="a")), Hang()]))
    timeouts = Timeouts(connect=2.0, first_token=2.0, idle=0.2, stall=5.0, total=10.0)
    async with rawsse.AsyncClient(
        base_url=server.url, api_key=KEY, timeout=timeouts, retries=0
    ) as c:
        started = time.monotonic()
        with pytest.raises(rawsse.IdleTimeout) as caught:
            await c.complete(model="m", messages=[])
        failed = time.monotonic()
    assert 0.15 < failed - started < 2.0
    assert caught.value.partial is not None
    assert caught.value.partial.text == "a"
    assert server.wait_disconnect() - failed < DISCONNECT_WITHIN


async def test_cancelling_a_read_closes_the_connection(server: ServerThread) -> None:
    server.expect(Script(steps=[Send(chunk(content="Hello")), Hang()]))
    async with rawsse.AsyncClient(base_url=server.url, api_key=KEY) as c:
        s = c.stream(model="m", messages=[])
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                async with s:
                    async for _ in s:
                        pass

            tg.start_soon(consume)
            await anyio.sleep(0.1)
            tg.cancel_scope.cancel()
            cancelled = time.monotonic()
        assert server.wait_disconnect() - cancelled < DISCONNECT_WITHIN
    assert s.result.status is ChatStatus.CANCELLED
    assert s.result.text == "Hello"


async def test_a_reset_mid_body_is_an_incomplete_stream(server: ServerThread) -> None:
    server.expect(Script(steps=[Send(chunk(content="Hel")), Reset()]))
    async with rawsse.AsyncClient(base_url=server.url, api_key=KEY, retries=0) as c:
        with pytest.raises(rawsse.IncompleteStreamError) as caught:
            await c.complete(model="m", messages=[])
    assert caught.value.partial is not None
    assert caught.value.partial.text == "Hel"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_unix_sockets_on_asyncio(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    with Plain(echo_length(), unix=path):
        stream = await AsyncioBackend().connect_unix_socket(path, timeout=2.0)
        await stream.write(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nab")
        got = b""
        while not got.endswith(b"\r\n\r\n2"):
            got += await stream.read(65536, timeout=2.0)
        assert stream.get_extra_info("is_readable") is False
        await stream.aclose()
        with pytest.raises(Exception, match="closed"):
            await stream.read(10)
        await anyio.sleep(0.05)  # the server closes its side


# -- the read deadline (the shell's clocks without a cancel scope per read) ------------


async def test_only_the_asyncio_stream_honours_the_read_deadline(
    server: ServerThread, anyio_backend: str
) -> None:
    server.expect(Script(steps=[Send(chunk(content="a") + DONE)]))
    async with (
        lean() as client,
        client.stream("POST", server.url + "/chat/completions") as response,
    ):
        assert honours_read_deadline(response) is (anyio_backend == "asyncio")


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_waiting_read_ends_at_the_read_deadline() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client leaves

    with Plain(silent) as server:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", server.port, timeout=2.0)
        loop = asyncio.get_running_loop()
        try:
            token = READ_DEADLINE.set(loop.time() + 0.1)
            started = time.monotonic()
            with pytest.raises(ReadDeadline):
                await stream.read(100)
            assert 0.09 < time.monotonic() - started < 2.0
            READ_DEADLINE.reset(token)
            # httpcore's own timeout still applies when it comes first
            token = READ_DEADLINE.set(loop.time() + 10.0)
            with pytest.raises(httpcore.ReadTimeout):
                await stream.read(100, timeout=0.05)
            READ_DEADLINE.reset(token)
        finally:
            await stream.aclose()
