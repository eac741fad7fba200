"""RecordingTransport: bytes pass through untouched and land in the cassette exactly."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import rawsse
from rawsse.testing import RecordingTransport, ReplayTransport, load_cassette, load_cassettes

from .conftest import FIXTURES, corpus_params
from .helpers import fixed_size
from .server import running_server, sse_script

KEY = "sk-or-v1-feedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedface0123"
URL = "https://api.test/api/v1/chat/completions"
FIXTURE_BODIES = [pytest.param(p, id=p.name) for p in sorted(FIXTURES.glob("*.sse"))]


def pieces_of(body: bytes) -> list[bytes]:
    """Uneven reads, like a socket's: 1, 2, 3, ... bytes, then the rest in 997s."""
    out, i, n = [], 0, 1
    while i < len(body) and n < 40:
        out.append(body[i : i + n])
        i += n
        n += 1
    return out + fixed_size(body[i:], 997)


class Body(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that yields ``pieces`` and then, optionally, raises ``error``."""

    def __init__(
        self, pieces: list[bytes], error: Exception | None = None, clock: list[float] | None = None
    ) -> None:
        self.pieces = pieces
        self.error = error
        self.clock = clock
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for piece in self.pieces:
            if self.clock is not None:
                self.clock[0] += 0.25
            yield piece
        if self.error is not None:
            raise self.error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self:
            yield piece

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


def mock(body: Body, status: int = 200, seen: list[httpx.Request] | None = None) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, headers={"content-type": "text/event-stream"}, stream=body)

    return httpx.MockTransport(handler)


def stream_sync(transport: httpx.BaseTransport, **kwargs: Any) -> list[bytes]:
    with httpx.Client(transport=transport) as client:
        body = kwargs.pop("json", {"model": "m/x", "stream": True})
        with client.stream("POST", kwargs.pop("url", URL), json=body, **kwargs) as response:
            return list(response.iter_raw())


async def stream_async(transport: httpx.AsyncBaseTransport) -> list[bytes]:
    async with (
        httpx.AsyncClient(transport=transport) as client,
        client.stream("POST", URL, json={"model": "m/x"}) as response,
    ):
        return [piece async for piece in response.aiter_raw()]


def round_trip(path: Path, tmp_path: Path) -> None:
    body = path.read_bytes()
    pieces = pieces_of(body)
    target = tmp_path / "rec.jsonl"
    got = stream_sync(RecordingTransport(mock(Body(pieces)), target))
    assert got == pieces  # passed through untouched, same boundaries
    cassette = load_cassette(target)
    assert [data for _, data in cassette.chunks] == pieces
    assert cassette.body == body
    assert cassette.end == "eof"
    # Replayed as recorded: the same bytes in the same pieces.
    assert stream_sync(ReplayTransport(target)) == pieces
    assert stream_sync(ReplayTransport(target, chunking="random", seed=3)) != pieces or not body
    # One byte per chunk through httpx costs ~2 µs a byte: the megabyte image stream uses 7.
    small = ReplayTransport(target, chunking="byte" if len(body) < 100_000 else 7)
    assert b"".join(stream_sync(small)) == body


@pytest.mark.parametrize("path", FIXTURE_BODIES)
def test_round_trip_every_fixture(path: Path, tmp_path: Path) -> None:
    round_trip(path, tmp_path)


@pytest.mark.parametrize("path", corpus_params())
def test_round_trip_every_corpus_stream(path: Path, tmp_path: Path) -> None:
    round_trip(path, tmp_path)


@pytest.mark.anyio
async def test_async_round_trip(tmp_path: Path) -> None:
    body = (FIXTURES / "multibyte_split.sse").read_bytes()
    pieces = pieces_of(body)
    target = tmp_path / "rec.jsonl"
    assert await stream_async(RecordingTransport(mock(Body(pieces)), target)) == pieces
    cassette = load_cassette(target)
    assert [data for _, data in cassette.chunks] == pieces
    assert await stream_async(ReplayTransport(target)) == pieces


def test_offsets_count_from_the_request(tmp_path: Path) -> None:
    clock = [100.0]
    body = Body([b"data: a\n\n", b"data: b\n\n"], clock=clock)

    def handler(request: httpx.Request) -> httpx.Response:
        clock[0] += 0.5  # the server takes half a second to answer
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)

    target = tmp_path / "rec.jsonl"
    transport = RecordingTransport(httpx.MockTransport(handler), target, clock=lambda: clock[0])
    stream_sync(transport)
    cassette = load_cassette(target)
    assert cassette.response_t == 0.5
    assert cassette.chunks == [(0.75, b"data: a\n\n"), (1.0, b"data: b\n\n")]
    assert cassette.end_t == 1.0


def test_a_cut_stream_records_what_arrived_and_the_error(tmp_path: Path) -> None:
    error = httpx.RemoteProtocolError("peer closed connection without sending complete body")
    target = tmp_path / "cut.jsonl"
    transport = RecordingTransport(mock(Body([b"data: a\n\n", b"data: b"], error)), target)
    got: list[bytes] = []
    with (
        httpx.Client(transport=transport) as client,
        client.stream("POST", URL, json={"model": "m"}) as response,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        got.extend(response.iter_raw())
    assert got == [b"data: a\n\n", b"data: b"]
    cassette = load_cassette(target)
    assert cassette.body == b"data: a\n\ndata: b"
    assert cassette.end == "error"
    assert cassette.error == (
        "RemoteProtocolError: peer closed connection without sending complete body"
    )
    # Replayed, the consumer sees the same bytes and the same exception type.
    got = []
    with pytest.raises(httpx.RemoteProtocolError, match="without sending complete body"):
        got.extend(stream_sync(ReplayTransport(target)))


def test_stopping_early_records_end_closed_when_the_response_closes(tmp_path: Path) -> None:
    target = tmp_path / "early.jsonl"
    inner_body = Body([b"data: a\n\n", b"data: b\n\n", b"data: c\n\n"])
    transport = RecordingTransport(mock(inner_body), target)
    with httpx.Client(transport=transport) as client:
        with client.stream("POST", URL, json={"model": "m"}) as response:
            first = next(response.iter_raw())
            assert not target.exists()  # still open: nothing written yet
        assert target.exists()
    assert first == b"data: a\n\n"
    assert inner_body.closed
    cassette = load_cassette(target)
    assert (cassette.end, cassette.body) == ("closed", b"data: a\n\n")


def test_the_file_is_written_at_end_of_body(tmp_path: Path) -> None:
    target = tmp_path / "eof.jsonl"
    transport = RecordingTransport(mock(Body([b"data: a\n\n"])), target)
    with (
        httpx.Client(transport=transport) as client,
        client.stream("POST", URL, json={"model": "m"}) as response,
    ):
        assert list(response.iter_raw()) == [b"data: a\n\n"]
        assert load_cassette(target).end == "eof"
    assert transport.saved == [target]


def test_a_single_file_keeps_every_exchange(tmp_path: Path) -> None:
    target = tmp_path / "one.jsonl"
    transport = RecordingTransport(mock(Body([b"x"]), status=429), target)
    stream_sync(transport)
    transport.inner = mock(Body([b"data: ok\n\n"]))
    stream_sync(transport)
    assert transport.saved == [target, target]
    assert [c.status for c in load_cassettes(target)] == [429, 200]


def test_a_directory_gets_one_file_per_exchange(tmp_path: Path) -> None:
    transport = RecordingTransport(mock(Body([b"data: ok\n\n"])), tmp_path / "casss")
    stream_sync(transport, json={"model": "openai/gpt-4o"})
    stream_sync(transport, json={"model": "openai/gpt-4o"})
    names = [p.name for p in transport.saved]
    assert len(names) == 2
    assert names[0].endswith("-openai-gpt-4o.jsonl")
    assert names[1].endswith("-openai-gpt-4o-2.jsonl")
    assert sorted(p.name for p in (tmp_path / "casss").iterdir()) == sorted(names)


def test_the_key_never_touches_disk(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    target = tmp_path / "k.jsonl"
    transport = RecordingTransport(mock(Body([b"data: ok\n\n"]), seen=seen), target)
    stream_sync(
        transport,
        url=URL + "?api_key=" + KEY,
        headers={"Authorization": f"Bearer {KEY}", "X-Api-Key": KEY, "Cookie": "c=" + KEY},
        json={"model": "m", "user": KEY},
    )
    # The server got the real key; the file has none of it.
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    raw = target.read_bytes()
    assert KEY.encode() not in raw
    assert KEY[:20].encode() not in raw
    assert b"REDACTED" in raw
    header = json.loads(raw.split(b"\n")[0])
    assert header["request"]["headers"]["authorization"] == "REDACTED"
    assert header["request"]["url"] == URL + "?api_key=REDACTED"


def test_wrong_kind_of_inner_transport(tmp_path: Path) -> None:
    sync_only = RecordingTransport(httpx.HTTPTransport(), tmp_path / "a.jsonl")
    with pytest.raises(TypeError, match="sync transport"):
        anyio.run(stream_async, sync_only)


def test_client_record_to_writes_a_replayable_cassette(tmp_path: Path) -> None:
    body = (FIXTURES / "plain_text.sse").read_bytes()
    with running_server() as server:
        server.expect(sse_script(body, splits=[100, 2000]))
        with rawsse.Client(api_key=KEY, base_url=server.url, record_to=tmp_path) as client:
            live = list(client.stream(model="openai/gpt-4o", messages=[]))
    (path,) = tmp_path.glob("*.jsonl")
    raw = path.read_bytes()
    assert KEY.encode() not in raw
    cassette = load_cassette(path)
    assert cassette.body == body
    assert cassette.model == "openai/gpt-4o"
    replay = ReplayTransport(path)
    http = httpx.Client(transport=replay)
    with rawsse.Client(api_key="x", base_url=server.url, http_client=http) as client:
        assert list(client.stream(model="openai/gpt-4o", messages=[])) == live


@pytest.mark.parametrize(
    ("content", "stored"),
    [
        (b'{"model": "m", "n": 1}', {"model": "m", "n": 1}),
        (b"plain words", "plain words"),
        (b"\xff\x00", "b64:/wA="),
        (b"", None),
    ],
)
def test_request_bodies_are_stored_readably(content: bytes, stored: Any, tmp_path: Path) -> None:
    target = tmp_path / "b.jsonl"
    transport = RecordingTransport(mock(Body([b"ok"])), target)
    with httpx.Client(transport=transport) as client:
        assert client.post(URL, content=content).content == b"ok"
    assert load_cassette(target).request["body"] == stored


def test_a_sync_client_needs_a_sync_inner_transport(tmp_path: Path) -> None:
    async_only = RecordingTransport(httpx.AsyncHTTPTransport(), tmp_path / "a.jsonl")
    with httpx.Client(transport=async_only) as client, pytest.raises(TypeError, match="async"):
        client.get(URL)
    assert "a.jsonl" in repr(async_only)


@pytest.mark.parametrize(
    ("name", "directory", "is_dir"),
    [
        ("out.jsonl", None, False),
        ("out.txt", None, False),
        ("casss", None, True),
        ("with.dot", True, True),
        ("plain", False, False),
    ],
)
def test_file_or_directory(name: str, directory: bool | None, is_dir: bool, tmp_path: Path) -> None:
    transport = RecordingTransport(mock(Body([b"ok"])), tmp_path / name, directory=directory)
    stream_sync(transport)
    (saved,) = transport.saved
    assert (saved.parent == tmp_path / name) is is_dir
    assert (saved == tmp_path / name) is not is_dir
