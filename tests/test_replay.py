"""ReplayTransport: exact bytes; each chunking, timing and fault option changes only its part."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rawsse
from rawsse import CassetteError, accumulate, parse_chat_stream
from rawsse.testing import Cassette, ReplayTransport, load_cassette, save_cassette

from .conftest import FIXTURES
from .helpers import byte_at_a_time, fixed_size

URL = "https://api.test/api/v1/chat/completions"
BODY = b': OPENROUTER PROCESSING\n\ndata: {"a":1}\n\ndata: {"b":"\xe2\x82\xac"}\n\ndata: [DONE]\n\n'
RECORDED = [BODY[:25], BODY[25:40], BODY[40:61], BODY[61:]]  # cuts inside the euro sign
CASSETTE_FILES = sorted((FIXTURES / "cassettes").glob("*.jsonl"))


def cassette(
    pieces: list[bytes] = RECORDED,
    *,
    times: list[float] | None = None,
    end: str = "eof",
    error: str | None = None,
    model: str = "m/x",
    status: int = 200,
    path: str = "/api/v1/chat/completions",
) -> Cassette:
    return Cassette(
        request={
            "method": "POST",
            "url": "https://recorded.test" + path,
            "headers": {},
            "body": {"model": model, "stream": True},
        },
        status=status,
        headers={"content-type": "text/event-stream"},
        chunks=list(zip(times or [0.0] * len(pieces), pieces, strict=True)),
        end=end,
        error=error,
        end_t=(times or [0.0])[-1],
    )


def get(transport: ReplayTransport, *, model: str = "m/x", url: str = URL) -> list[bytes]:
    with (
        httpx.Client(transport=transport) as client,
        client.stream("POST", url, json={"model": model, "stream": True}) as response,
    ):
        return list(response.iter_raw())


def get_until_error(transport: ReplayTransport) -> tuple[list[bytes], Exception]:
    got: list[bytes] = []
    with (
        httpx.Client(transport=transport) as client,
        client.stream("POST", URL, json={"model": "m/x"}) as response,
    ):
        try:
            got.extend(response.iter_raw())
        except httpx.TransportError as exc:
            return got, exc
    raise AssertionError("no error")


async def aget(transport: ReplayTransport) -> list[bytes]:
    async with (
        httpx.AsyncClient(transport=transport) as client,
        client.stream("POST", URL, json={"model": "m/x"}) as response,
    ):
        return [piece async for piece in response.aiter_raw()]


# -- chunking ----------------------------------------------------------------------------


def test_recorded_chunking_is_the_default() -> None:
    assert get(ReplayTransport(cassette())) == RECORDED


def test_every_byte() -> None:
    assert get(ReplayTransport(cassette(), chunking="byte")) == byte_at_a_time(BODY)


@pytest.mark.parametrize("size", [1, 2, 7, 64, len(BODY), 10_000])
def test_fixed_size(size: int) -> None:
    assert get(ReplayTransport(cassette(), chunking=size)) == fixed_size(BODY, size)


def test_random_is_reproducible_by_seed() -> None:
    body = BODY * 20
    one = get(ReplayTransport(cassette([body]), chunking="random", seed=1))
    assert one == get(ReplayTransport(cassette([body]), chunking="random", seed=1))
    assert one != get(ReplayTransport(cassette([body]), chunking="random", seed=2))
    assert b"".join(one) == body
    assert all(1 <= len(piece) <= 64 for piece in one)
    assert len({len(piece) for piece in one}) > 5


@pytest.mark.anyio
@pytest.mark.parametrize("chunking", ["recorded", "byte", 5])
async def test_async_chunking_matches_sync(chunking: Any) -> None:
    assert await aget(ReplayTransport(cassette(), chunking=chunking)) == get(
        ReplayTransport(cassette(), chunking=chunking)
    )


# -- faults ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 24, 25, 26, 60, len(BODY) - 1])
def test_cut_after_exactly_n_bytes(n: int) -> None:
    got, exc = get_until_error(ReplayTransport(cassette(), cut_after=n))
    assert b"".join(got) == BODY[:n]
    # Boundaries stay the recorded ones, with one more cut at n.
    ends = sorted({25, 40, 61, n} - {0})
    expected = [BODY[a:b] for a, b in zip([0, *ends], ends, strict=False) if b <= n]
    assert got == expected
    assert type(exc) is httpx.RemoteProtocolError
    assert f"cut after {n} bytes" in str(exc)


@pytest.mark.parametrize("n", [len(BODY), len(BODY) + 100])
def test_cut_at_or_past_the_end_replaces_the_clean_end(n: int) -> None:
    got, exc = get_until_error(ReplayTransport(cassette(), cut_after=n))
    assert got == RECORDED
    assert type(exc) is httpx.RemoteProtocolError


def test_cut_with_chosen_error_and_chunking() -> None:
    got, exc = get_until_error(
        ReplayTransport(cassette(), cut_after=10, cut_error=httpx.ReadError, chunking="byte")
    )
    assert got == byte_at_a_time(BODY[:10])
    assert type(exc) is httpx.ReadError


@pytest.mark.anyio
async def test_async_cut() -> None:
    got: list[bytes] = []

    async def read(response: httpx.Response) -> None:
        async for piece in response.aiter_raw():
            got.append(piece)  # noqa: PERF401 - keeps what arrived before the error

    async with (
        httpx.AsyncClient(transport=ReplayTransport(cassette(), cut_after=30)) as client,
        client.stream("POST", URL, json={"model": "m/x"}) as response,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            await read(response)
    assert got == [BODY[:25], BODY[25:30]]


def stamped(transport: ReplayTransport) -> list[tuple[float, bytes]]:
    with httpx.Client(transport=transport) as client:
        start = time.monotonic()
        with client.stream("POST", URL, json={"model": "m/x"}) as response:
            return [(time.monotonic() - start, piece) for piece in response.iter_raw()]


def test_stall_at_byte_n() -> None:
    got = stamped(ReplayTransport(cassette(), stall_at=30, stall_for=0.2))
    assert [piece for _, piece in got] == [BODY[:25], BODY[25:30], BODY[30:40], *RECORDED[2:]]
    times = [t for t, _ in got]
    assert times[1] < 0.15  # instant up to the stall
    assert 0.2 <= times[2] - times[1] < 1.0


@pytest.mark.parametrize(("n", "index"), [(0, 0), (25, 1), (len(BODY), 4), (10**6, 4)])
def test_stall_at_a_boundary_adds_no_cut(n: int, index: int) -> None:
    got = stamped(ReplayTransport(cassette(), stall_at=n, stall_for=0.15))
    assert [piece for _, piece in got] == RECORDED
    times = [0.0] + [t for t, _ in got]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    if index < len(RECORDED):
        assert gaps[index] >= 0.15
        assert sum(gaps) - gaps[index] < 0.15


@pytest.mark.anyio
async def test_async_stall() -> None:
    transport = ReplayTransport(cassette(), stall_at=40, stall_for=0.15)
    start = anyio.current_time()
    assert await aget(transport) == RECORDED
    assert 0.15 <= anyio.current_time() - start < 1.0


def test_status_replaced_body_kept() -> None:
    with httpx.Client(transport=ReplayTransport(cassette(), status=503)) as client:
        response = client.post(URL, json={"model": "m/x"})
    assert response.status_code == 503
    assert response.content == BODY
    assert response.headers["content-type"] == "text/event-stream"


# -- recorded endings --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        ("ReadError: [Errno 104] Connection reset by peer", httpx.ReadError, "[Errno 104]"),
        ("RemoteProtocolError: incomplete chunked read", httpx.RemoteProtocolError, "incomplete"),
        ("ReadTimeout", httpx.ReadTimeout, "ReadTimeout"),
        ("OSError: boom", httpx.ReadError, "recorded error: OSError: boom"),
        ("ValueError: nope", httpx.ReadError, "ValueError: nope"),
    ],
)
def test_a_recorded_error_is_raised_after_the_recorded_bytes(
    error: str, kind: type[Exception], message: str
) -> None:
    got, exc = get_until_error(ReplayTransport(cassette(end="error", error=error)))
    assert got == RECORDED
    assert type(exc) is kind
    assert message in str(exc)


@pytest.mark.parametrize("end", ["closed", "missing"])
def test_an_unfinished_recording_ends_as_a_cut(end: str) -> None:
    got, exc = get_until_error(ReplayTransport(cassette(end=end)))
    assert got == RECORDED
    assert type(exc) is httpx.RemoteProtocolError
    assert f"recorded end: {end}" in str(exc)


# -- timing --------------------------------------------------------------------------------

TIMES = [0.05, 0.1, 0.15, 0.2]


def test_instant_is_the_default() -> None:
    start = time.monotonic()
    get(ReplayTransport(cassette(times=[0.0, 1.0, 2.0, 3.0])))
    assert time.monotonic() - start < 0.5


def test_recorded_timing() -> None:
    got = stamped(ReplayTransport(cassette(times=TIMES), timing="recorded"))
    assert [piece for _, piece in got] == RECORDED
    for (t, _), want in zip(got, TIMES, strict=True):
        assert want <= t < want + 0.4


def test_speed_scales_the_recorded_timing() -> None:
    got = stamped(ReplayTransport(cassette(times=[0.5, 1.0, 1.5, 2.0]), speed=10))
    for (t, _), want in zip(got, [0.05, 0.1, 0.15, 0.2], strict=True):
        assert want <= t < want + 0.4


def test_rechunked_pieces_wait_for_their_last_byte() -> None:
    got = stamped(ReplayTransport(cassette(times=TIMES), timing="recorded", chunking=30))
    assert [piece for _, piece in got] == fixed_size(BODY, 30)
    # Bytes 0..29 end in recorded chunk 2 (0.1 s); bytes 30..59 in chunk 3 (0.15 s).
    assert 0.1 <= got[0][0] < 0.5
    assert 0.15 <= got[1][0] < 0.55


@pytest.mark.anyio
async def test_async_recorded_timing() -> None:
    start = anyio.current_time()
    assert await aget(ReplayTransport(cassette(times=TIMES), speed=2)) == RECORDED
    assert 0.1 <= anyio.current_time() - start < 0.6


# -- matching ------------------------------------------------------------------------------


def test_no_match_lists_what_is_available() -> None:
    transport = ReplayTransport([cassette(model="a"), cassette(model="b", path="/v1/other")])
    with pytest.raises(CassetteError) as info:
        get(transport, url="https://api.test/v2/elsewhere")
    assert str(info.value) == (
        "no cassette matches POST /v2/elsewhere (match='path'); available:\n"
        "  - a: POST /api/v1/chat/completions (model 'a')\n"
        "  - b: POST /v1/other (model 'b')"
    )


def test_match_by_model() -> None:
    transport = ReplayTransport(
        [cassette([b"data: a\n\n"], model="a"), cassette([b"data: b\n\n"], model="b")],
        match="model",
    )
    assert get(transport, model="b") == [b"data: b\n\n"]
    assert get(transport, model="a") == [b"data: a\n\n"]
    with pytest.raises(CassetteError, match=r"\(model 'c'\) \(match='model'\)"):
        get(transport, model="c")


def test_match_by_body() -> None:
    transport = ReplayTransport(cassette(), match="body")
    with httpx.Client(transport=transport) as client:
        assert client.post(URL, json={"model": "m/x", "stream": True}).content == BODY
        with pytest.raises(CassetteError, match="with this exact body"):
            client.post(URL, json={"model": "m/x", "stream": False})


def test_several_matches_play_in_order_then_repeat(tmp_path: Path) -> None:
    save_cassette(cassette([b"first"], status=429), tmp_path / "1.jsonl")
    save_cassette(cassette([b"second"]), tmp_path / "2.jsonl")
    transport = ReplayTransport(tmp_path)
    with httpx.Client(transport=transport) as client:
        got = [client.post(URL, json={}) for _ in range(3)]
    assert [(r.status_code, r.content) for r in got] == [
        (429, b"first"),
        (200, b"second"),
        (429, b"first"),
    ]
    assert [c.name for _, c in transport.played] == ["1", "2", "1"]


def test_sources_a_file_a_directory_and_objects(tmp_path: Path) -> None:
    path = save_cassette(cassette(), tmp_path / "c.jsonl")
    assert len(ReplayTransport(path).cassettes) == 1
    assert len(ReplayTransport(str(tmp_path)).cassettes) == 1
    assert len(ReplayTransport([path, cassette(), [cassette()]]).cassettes) == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(CassetteError, match="no cassettes"):
        ReplayTransport(tmp_path / "empty")
    with pytest.raises(CassetteError, match="at least one"):
        ReplayTransport([])
    with pytest.raises(CassetteError, match="no such cassette"):
        ReplayTransport(tmp_path / "missing.jsonl")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"match": "host"},
        {"timing": "fast"},
        {"speed": 0},
        {"timing": "instant", "speed": 2},
        {"chunking": 0},
        {"chunking": "lines"},
        {"chunking": True},
        {"cut_after": -1},
        {"stall_at": -1},
        {"stall_for": -1},
        {"status": 42},
    ],
)
def test_bad_options(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ReplayTransport(cassette(), **kwargs)


# -- through rawsse.Client: the same events as the original stream -------------------------


def replayable(path: Path) -> bool:
    """A whole 200 stream without malformed chunks (those raise by design)."""
    c = load_cassette(path)
    try:
        parse_chat_stream(c.body)
    except rawsse.MalformedChunk:
        return False
    return c.status == 200 and c.end == "eof"


CLEAN = [pytest.param(p, id=p.stem) for p in CASSETTE_FILES if replayable(p)]


@pytest.mark.parametrize("chunking", ["recorded", "byte"])
@pytest.mark.parametrize("path", CLEAN)
def test_client_sees_the_events_of_the_original_stream(path: Path, chunking: str) -> None:
    expected = parse_chat_stream(load_cassette(path).body)
    transport = ReplayTransport(path, chunking=chunking)
    http = httpx.Client(transport=transport)
    with (
        rawsse.Client(
            api_key="x", base_url="https://h.test/api/v1", http_client=http, in_band_error="yield"
        ) as client,
        client.stream(model="any", messages=[]) as stream,
    ):
        assert list(stream) == expected
    assert stream.result == accumulate(expected)
    http.close()


@pytest.mark.anyio
async def test_async_client_cut_becomes_incomplete_stream() -> None:
    path = FIXTURES / "cassettes" / "plain_text.jsonl"
    transport = ReplayTransport(path, cut_after=1000)
    async with httpx.AsyncClient(transport=transport) as http:
        client = rawsse.AsyncClient(api_key="x", base_url="https://h.test/api/v1", http_client=http)
        with pytest.raises(rawsse.IncompleteStreamError) as info:
            await client.complete(model="any", messages=[])
    assert info.value.partial is not None
    assert info.value.partial.status == rawsse.ChatStatus.TRUNCATED


@settings(max_examples=100, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=300),
    cuts=st.lists(st.integers(min_value=1, max_value=299), max_size=6),
    chunking=st.sampled_from(["recorded", "byte", "random", 1, 3, 50]),
    seed=st.integers(0, 1000),
)
def test_any_body_any_chunking_gives_the_same_bytes(
    body: bytes, cuts: list[int], chunking: Any, seed: int
) -> None:
    ends = sorted({c for c in cuts if c < len(body)} | {len(body)})
    pieces = [body[a:b] for a, b in itertools.pairwise([0, *ends])]
    got = get(ReplayTransport(cassette(pieces), chunking=chunking, seed=seed))
    assert b"".join(got) == body
    assert all(got)
    if chunking == "recorded":
        assert got == pieces
    elif isinstance(chunking, int):
        assert got == fixed_size(body, chunking)
