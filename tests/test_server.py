"""The fixture server over real TCP: httpx, raw sockets, rawsse, the openai SDK and curl."""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import rawsse
from rawsse import ChatStatus, accumulate, parse_chat_stream
from rawsse._server import load_fixtures
from rawsse.testing import Cassette, CassetteError, FixtureServer, load_cassette, save_cassette

from .conftest import FIXTURES

SHIPPED = sorted(
    (Path(rawsse.__file__).parent / "recordings").glob("*.jsonl"), key=lambda p: p.name
)
FIXTURE_CASSETTES = sorted((FIXTURES / "cassettes").glob("*.jsonl"))
CHAT = "/chat/completions"


@pytest.fixture(scope="module")
def shipped() -> Iterator[FixtureServer]:
    with FixtureServer(speed=0) as server:
        yield server


@pytest.fixture(scope="module")
def fixtures_server() -> Iterator[FixtureServer]:
    with FixtureServer(FIXTURES / "cassettes", speed=0) as server:
        yield server


def _raw_exchange(server: FixtureServer, request: bytes) -> bytes:
    """Send ``request`` on a fresh socket; everything the server sends until it closes."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(request)
        received = bytearray()
        while data := sock.recv(65536):
            received += data
    return bytes(received)


def _post(model: str, *, extra: str = "", body: bytes | None = None) -> bytes:
    payload = body if body is not None else json.dumps({"model": model, "stream": True}).encode()
    return (
        f"POST /api/v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\n{extra}Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


def _split_response(raw: bytes) -> tuple[bytes, list[bytes], bool]:
    """(head, the HTTP chunks, whether the terminating chunk arrived)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    chunks = []
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line, 16)
        if size == 0:
            return head, chunks, True
        chunks.append(rest[:size])
        rest = rest[size + 2 :]
    return head, chunks, False


# -- the served bytes ------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_recording_one_http_chunk_per_recorded_chunk(
    shipped: FixtureServer, path: Path
) -> None:
    cassette = load_cassette(path)
    raw = _raw_exchange(shipped, _post(str(cassette.model)))
    head, chunks, complete = _split_response(raw)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\ntransfer-encoding: chunked" in head
    assert chunks == [data for _, data in cassette.chunks]
    assert complete


@pytest.mark.parametrize("path", FIXTURE_CASSETTES, ids=lambda p: p.name)
def test_fixture_cassettes_byte_exact_over_httpx(
    fixtures_server: FixtureServer, path: Path
) -> None:
    cassette = load_cassette(path)
    name = path.name.removesuffix(".jsonl")
    with httpx.Client(base_url=fixtures_server.base_url) as client:
        request = client.build_request(
            "POST",
            CHAT,
            json={"model": "ignored", "stream": True},
            headers={"X-Rawsse-Cassette": name},
        )
        response = client.send(request, stream=True)
        received = bytearray()
        try:
            for data in response.iter_raw():
                received += data
        except httpx.RemoteProtocolError:
            assert cassette.end != "eof"  # a cut recording is cut again
        else:
            assert cassette.end == "eof"
        finally:
            response.close()
    assert response.status_code == cassette.status
    assert response.headers["content-type"] == cassette.headers["content-type"]
    assert bytes(received) == cassette.body


def test_models_are_listed_in_openai_shape(shipped: FixtureServer) -> None:
    response = httpx.get(shipped.base_url + "/models")
    assert response.status_code == 200
    doc = response.json()
    assert doc["object"] == "list"
    assert [m["id"] for m in doc["data"]] == [
        "rawsse/demo",
        "rawsse/error-midstream",
        "rawsse/reasoning",
        "rawsse/slow-start",
        "rawsse/tool-call",
    ]
    assert {m["object"] for m in doc["data"]} == {"model"}
    assert all(isinstance(m["created"], int) and m["owned_by"] == "rawsse" for m in doc["data"])


def test_duplicate_models_fall_back_to_file_names(fixtures_server: FixtureServer) -> None:
    ids = fixtures_server.models
    assert len(ids) == len(set(ids)) == len(FIXTURE_CASSETTES)
    assert "openai/gpt-4o-mini" in ids
    assert "plain_text" in ids or "usage_cost" in ids


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", CHAT, b'{"model": "nope", "stream": true}', 404, "no cassette for model 'nope'"),
        ("POST", CHAT, b"{not json", 400, "not valid JSON"),
        ("POST", CHAT, b"[1, 2]", 400, "must be a JSON object"),
        ("POST", CHAT, b'{"stream": true}', 400, "has no 'model'"),
        ("GET", CHAT, b"", 405, "only POST is allowed"),
        ("POST", "/models", b"", 405, "only GET is allowed"),
        ("GET", "/nowhere", b"", 404, "not found"),
    ],
)
def test_errors_are_openrouter_shaped(
    shipped: FixtureServer, method: str, path: str, body: bytes, status: int, message: str
) -> None:
    response = httpx.request(method, shipped.base_url + path, content=body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "*"
    error = response.json()["error"]
    assert error["code"] == status
    assert message in error["message"]


def test_bad_fault_header_is_a_400(shipped: FixtureServer) -> None:
    response = httpx.post(
        shipped.base_url + CHAT,
        json={"model": "rawsse/demo", "stream": True},
        headers={"X-Rawsse-Stall": "ten"},
    )
    assert response.status_code == 400
    assert "X-Rawsse-Stall: N,S" in response.json()["error"]["message"]


def test_error_cassette_replays_status_headers_and_body(tmp_path: Path) -> None:
    body = b'{"error":{"code":429,"message":"Rate limit exceeded","metadata":{}}}'
    save_cassette(
        Cassette.from_body(
            body,
            status=429,
            headers={"content-type": "application/json", "retry-after": "7"},
            request_body={"model": "limited"},
        ),
        tmp_path / "limited.jsonl",
    )
    with FixtureServer(tmp_path, speed=0) as server:
        for stream in (True, False):
            response = httpx.post(
                server.base_url + CHAT, json={"model": "limited", "stream": stream}
            )
            assert response.status_code == 429
            assert response.headers["retry-after"] == "7"
            assert response.content == body


def test_bad_request_lines_get_a_400_and_close(shipped: FixtureServer) -> None:
    raw = _raw_exchange(shipped, b"NONSENSE\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"connection: close" in raw


def test_load_fixtures_errors(tmp_path: Path) -> None:
    with pytest.raises(CassetteError, match="no cassettes"):
        load_fixtures(tmp_path)
    with pytest.raises(CassetteError, match="no such file"):
        load_fixtures(tmp_path / "missing")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(CassetteError, match=r"bad\.jsonl, line 1"):
        load_fixtures(tmp_path)


def test_one_cassette_file_can_be_served() -> None:
    with FixtureServer(FIXTURES / "cassettes" / "tool_call.jsonl", speed=0) as server:
        assert server.models == ["openai/gpt-4o-mini"]


# -- HTTP/1.1 behaviour ---------------------------------------------------------------------


def test_keep_alive_serves_several_requests_on_one_connection(shipped: FixtureServer) -> None:
    transport = httpx.HTTPTransport()
    with httpx.Client(base_url=shipped.base_url, transport=transport) as client:
        peers = set()
        for model in ("rawsse/demo", "rawsse/tool-call", "rawsse/demo"):
            with client.stream("POST", CHAT, json={"model": model, "stream": True}) as response:
                response.read()
                stream = response.extensions["network_stream"]
                peers.add(stream.get_extra_info("socket").getsockname())
        assert len(peers) == 1  # the same client socket each time


def test_expect_continue_and_chunked_request_body(shipped: FixtureServer) -> None:
    payload = json.dumps({"model": "rawsse/tool-call", "stream": True}).encode()
    request = (
        b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%b\r\n" % (10, payload[:10])
        + b"%x\r\n%b\r\n0\r\n\r\n" % (len(payload) - 10, payload[10:])
    )
    raw = _raw_exchange(shipped, request)
    assert raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    _, chunks, complete = _split_response(raw.split(b"\r\n\r\n", 1)[1])
    assert b"".join(chunks) == load_cassette(SHIPPED[-1]).body
    assert complete


def test_cors_preflight(shipped: FixtureServer) -> None:
    response = httpx.options(
        shipped.base_url + CHAT,
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == "authorization, content-type"


# -- timing and faults ------------------------------------------------------------------


def _timed_stream(base_url: str, model: str, **headers: str) -> tuple[list[float], bytes]:
    times = []
    body = bytearray()
    start = time.monotonic()
    with (
        httpx.Client(base_url=base_url) as client,
        client.stream(
            "POST", CHAT, json={"model": model, "stream": True}, headers=headers
        ) as response,
    ):
        for data in response.iter_raw():
            times.append(time.monotonic() - start)
            body += data
    return times, bytes(body)


def test_recorded_timing_is_scaled_by_speed() -> None:
    cassette = load_cassette(SHIPPED[0])  # demo: 3.5 s as recorded
    last = cassette.chunks[-1][0]
    with FixtureServer(speed=10) as server:
        times, body = _timed_stream(server.base_url, "rawsse/demo")
    assert body == cassette.body
    assert times[-1] >= last / 10 - 0.02
    assert times[-1] < last / 10 + 1.0
    # The first content arrives after the first keep-alive, roughly when it was recorded.
    assert times[0] >= cassette.chunks[0][0] / 10 - 0.02


def test_speed_header_overrides_the_server_speed() -> None:
    with FixtureServer(speed=1) as server:
        times, _ = _timed_stream(server.base_url, "rawsse/demo", **{"X-Rawsse-Speed": "instant"})
    assert times[-1] < 1.0  # 3.5 s as recorded


def test_cut_after_sends_exactly_n_bytes_then_drops(shipped: FixtureServer) -> None:
    raw = _raw_exchange(shipped, _post("rawsse/demo", extra="X-Rawsse-Cut-After: 150\r\n"))
    _, chunks, complete = _split_response(raw)
    assert b"".join(chunks) == load_cassette(SHIPPED[0]).body[:150]
    assert not complete
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(
            shipped.base_url + CHAT,
            json={"model": "rawsse/demo", "stream": True},
            headers={"X-Rawsse-Cut-After": "150"},
        )


def test_stall_pauses_at_byte_n(shipped: FixtureServer) -> None:
    times, body = _timed_stream(shipped.base_url, "rawsse/demo", **{"X-Rawsse-Stall": "40,0.3"})
    assert body == load_cassette(SHIPPED[0]).body
    assert times[-1] >= 0.3
    assert times[0] < 0.2  # the bytes before the stall point came at once


def test_a_cut_recording_is_cut_again(fixtures_server: FixtureServer) -> None:
    cassette = load_cassette(FIXTURES / "cassettes" / "truncated.jsonl")
    raw = _raw_exchange(fixtures_server, _post("x", extra="X-Rawsse-Cassette: truncated\r\n"))
    _, chunks, complete = _split_response(raw)
    assert b"".join(chunks) == cassette.body
    assert not complete


def test_close_drops_a_stream_in_progress() -> None:
    server = FixtureServer(speed=1).start()
    with (
        httpx.Client(base_url=server.base_url) as client,
        client.stream(
            "POST", CHAT, json={"model": "rawsse/slow-start", "stream": True}
        ) as response,
    ):
        started = time.monotonic()
        server.close()
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()
    assert time.monotonic() - started < 2.0


# -- the log ------------------------------------------------------------------------------


def test_one_log_line_per_request_and_never_a_key() -> None:
    log = io.StringIO()
    secret = "sk-or-v1-0123456789abcdef0123456789abcdef"
    with FixtureServer(speed=0, log=log) as server:
        httpx.post(
            server.base_url + CHAT + f"?key={secret}",
            json={"model": "rawsse/tool-call", "stream": True},
            headers={"Authorization": f"Bearer {secret}"},
        )
        httpx.get(server.base_url + "/models")
        httpx.post(server.base_url + CHAT, json={"model": "nope"})
    lines = log.getvalue().splitlines()
    assert len(lines) == 3
    body_size = len(load_cassette(SHIPPED[-1]).body)
    assert lines[0].startswith("POST /api/v1/chat/completions?key=REDACTED model=rawsse/tool-call ")
    assert f" 200 {body_size} B " in lines[0]
    assert lines[1].startswith("GET /api/v1/models model=- 200 ")
    assert lines[2].startswith("POST /api/v1/chat/completions model=nope 404 ")
    assert secret not in log.getvalue()


# -- real clients ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_rawsse_client_gets_the_recorded_events(shipped: FixtureServer, path: Path) -> None:
    cassette = load_cassette(path)
    expected = parse_chat_stream(cassette.body)
    events = []
    with rawsse.Client(
        base_url=shipped.base_url, api_key="unused", retries=0, in_band_error="yield"
    ) as client:
        with client.stream(model=str(cassette.model), messages=[]) as stream:
            events = list(stream)
        assert stream.result == accumulate(expected)
    assert events == expected


def test_rawsse_non_streaming_equals_streaming(shipped: FixtureServer) -> None:
    with rawsse.Client(base_url=shipped.base_url, api_key="unused", retries=0) as client:
        for model in ("rawsse/demo", "rawsse/tool-call", "rawsse/reasoning"):
            plain = client.complete(model=model, messages=[], stream=False)
            streamed = client.complete(model=model, messages=[])
            assert plain.text == streamed.text
            assert plain.usage is not None
            assert streamed.usage is not None
            assert plain.usage.raw == streamed.usage.raw
            assert plain.choices[0].tool_calls == streamed.choices[0].tool_calls
            assert plain.choices[0].finish_reason == streamed.choices[0].finish_reason
            assert plain.status is ChatStatus.COMPLETE


def test_openai_sdk_streams_and_lists_models(shipped: FixtureServer) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=shipped.base_url, api_key="unused", max_retries=0)
    try:
        assert [m.id for m in client.models.list()][:1] == ["rawsse/demo"]
        chunks = client.chat.completions.create(
            model="rawsse/demo", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        expected = accumulate(parse_chat_stream(load_cassette(SHIPPED[0]).body))
        assert text == expected.text
        plain = client.chat.completions.create(
            model="rawsse/demo", messages=[{"role": "user", "content": "hi"}]
        )
        assert plain.choices[0].message.content == expected.text
        assert plain.usage is not None
        assert plain.usage.completion_tokens == expected.usage.completion_tokens  # type: ignore[union-attr]
        with pytest.raises(openai.NotFoundError, match="no cassette for model"):
            client.chat.completions.create(model="nope", messages=[], stream=True)
    finally:
        client.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_no_buffer_gets_the_exact_body(shipped: FixtureServer) -> None:
    cassette = load_cassette(SHIPPED[0])
    result = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--no-buffer",
            shipped.base_url + CHAT,
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps({"model": "rawsse/demo", "stream": True}),
        ],
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert result.stdout == cassette.body


@pytest.mark.anyio
async def test_async_client_on_asyncio_and_trio(shipped: FixtureServer) -> None:
    expected = parse_chat_stream(load_cassette(SHIPPED[-1]).body)
    async with (
        rawsse.AsyncClient(base_url=shipped.base_url, api_key="unused") as client,
        client.stream(model="rawsse/tool-call", messages=[]) as stream,
    ):
        events = [event async for event in stream]
    assert events == expected


def test_non_streaming_answer_arrives_when_the_stream_would_have_ended() -> None:
    cassette = load_cassette(SHIPPED[-1])  # tool-call: 1.3 s as recorded
    assert cassette.end_t is not None
    with FixtureServer(speed=10) as server:
        start = time.monotonic()
        response = httpx.post(server.base_url + CHAT, json={"model": "rawsse/tool-call"})
        elapsed = time.monotonic() - start
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert cassette.end_t / 10 - 0.02 <= elapsed < cassette.end_t / 10 + 1.0
    doc = response.json()
    assert doc["object"] == "chat.completion"
    call = doc["choices"][0]["message"]["tool_calls"][0]
    assert call["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Paris","unit":"celsius"}',
    }
    assert doc["choices"][0]["message"]["content"] is None
    assert doc["choices"][0]["finish_reason"] == "tool_calls"


def test_non_streaming_answer_of_an_in_band_error(shipped: FixtureServer) -> None:
    doc = httpx.post(shipped.base_url + CHAT, json={"model": "rawsse/error-midstream"}).json()
    choice = doc["choices"][0]
    assert choice["finish_reason"] == "error"
    assert choice["error"]["code"] == 502
    assert choice["message"]["content"].startswith("The Moon is Earth's only natural satellite.")


def test_non_streaming_answers_take_faults_too(fixtures_server: FixtureServer) -> None:
    raw = _raw_exchange(
        fixtures_server,
        _post(
            "x",
            body=b'{"model": "x"}',
            extra="X-Rawsse-Cassette: plain_text\r\nX-Rawsse-Cut-After: 10\r\n",
        ),
    )
    head, chunks, complete = _split_response(raw)
    assert b"content-type: application/json" in head
    assert chunks == [b'{"id": "ge']
    assert not complete


def test_non_streaming_request_for_a_json_cassette_replays_it(
    fixtures_server: FixtureServer,
) -> None:
    cassette = load_cassette(FIXTURES / "cassettes" / "http_401_unauthorized.jsonl")
    response = httpx.post(
        fixtures_server.base_url + CHAT,
        json={"model": "x"},
        headers={"X-Rawsse-Cassette": "http_401_unauthorized"},
    )
    assert response.status_code == 401
    assert response.content == cassette.body


def test_non_streaming_request_for_a_stream_with_a_bad_chunk_is_a_400(
    fixtures_server: FixtureServer,
) -> None:
    response = httpx.post(
        fixtures_server.base_url + CHAT,
        json={"model": "x"},
        headers={"X-Rawsse-Cassette": "garbage_line"},
    )
    assert response.status_code == 400
    assert 'send "stream": true' in response.json()["error"]["message"]
