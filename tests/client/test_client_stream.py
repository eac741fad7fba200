"""Client streams over real TCP: events, results, requests, responses and errors.

Every test runs on the sync client and on the async client under asyncio and trio.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

import rawsse
from rawsse import ChatStatus, InBandError, TextDelta, accumulate, parse_chat_stream
from tests.conftest import FIXTURES, corpus_params
from tests.server import (
    DONE,
    KEEPALIVE,
    KEY,
    USAGE,
    Reset,
    Script,
    Send,
    ServerThread,
    chunk,
    drive,
    error_script,
    running_server,
    sse_script,
)


def fixture_body(name: str) -> bytes:
    path = FIXTURES / f"{name}.sse"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path.read_bytes()


def expected(name: str) -> dict[str, Any]:
    table: dict[str, Any] = json.loads((FIXTURES / "expected.json").read_text())
    return dict(table[name])


def until_error(events: list[Any]) -> tuple[list[Any], InBandError | None]:
    for i, event in enumerate(events):
        if type(event) is InBandError:
            return events[:i], event
    return events, None


COMPLETE_FIXTURES = [
    "plain_text",
    "long_text",
    "multibyte_split",
    "unicode_separators",
    "crlf_line_endings",
    "keepalives_between",
    "reasoning_text_signature",
    "reasoning_summary_encrypted",
    "tool_call",
    "parallel_tool_calls",
    "n2_choices",
    "usage_only_final_chunk",
    "finish_length",
    "eof_without_done",
    "done_without_blank_line",
]


@pytest.mark.parametrize("name", COMPLETE_FIXTURES)
@pytest.mark.parametrize("piece", [0, 7])
def test_fixture_streams_arrive_whole(
    server: ServerThread, mode: str, name: str, piece: int
) -> None:
    body = fixture_body(name)
    splits = list(range(piece, len(body), piece)) if piece else None
    server.expect(sse_script(body, splits=splits))
    out = drive(mode, server.url)
    assert out.error is None
    assert out.events == parse_chat_stream(body)
    assert out.result == accumulate(out.events)
    assert out.result.status is ChatStatus.COMPLETE
    want = expected(name)
    assert out.result.text == want["text"]
    assert [c.finish_reason for c in out.result.choices] == [
        c["finish_reason"] for c in want["choices"]
    ]
    assert out.metrics.status == "complete"
    assert out.metrics.bytes_received == len(body)


@pytest.mark.parametrize("path", corpus_params())
def test_corpus_chat_streams(server: ServerThread, mode: str, path: Path | None) -> None:
    assert path is not None
    if "__chat_" not in path.name:
        pytest.skip("not a chat-completions stream")
    body = path.read_bytes()
    try:
        reference = parse_chat_stream(body)
    except rawsse.MalformedChunk:
        pytest.skip("the sans-I/O decoder rejects it (tested there)")
    server.expect(sse_script(body, splits=[len(body) // 3, len(body) // 2]))
    out = drive(mode, server.url)
    before, in_band = until_error(reference)
    if in_band is not None:
        assert isinstance(out.error, rawsse.StreamError)
        assert out.events == before
        assert out.error.code == in_band.code
        assert out.result.status is ChatStatus.ERROR
    elif accumulate(reference).status is ChatStatus.TRUNCATED:
        assert isinstance(out.error, rawsse.IncompleteStreamError)
        assert out.events == reference
    else:
        assert out.error is None
        assert out.events == reference
        assert out.result == accumulate(reference)


def test_request_shape(server: ServerThread, mode: str) -> None:
    server.expect(sse_script(chunk(content="ok", finish="stop", usage=USAGE) + DONE))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    out = drive(
        mode,
        server.url,
        client={"app_url": "https://example.test", "app_title": "Demo", "headers": {"X-A": "1"}},
        stream={"tools": tools, "provider": {"order": ["x"]}, "max_tokens": 5},
    )
    assert out.error is None
    (ex,) = server.exchanges
    assert ex.method == "POST"
    assert ex.path == "/api/v1/chat/completions"
    assert ex.json() == {
        "model": "test/model",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": tools,
        "provider": {"order": ["x"]},
        "max_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert ex.headers["authorization"] == f"Bearer {KEY}"
    assert ex.headers["accept"] == "text/event-stream"
    assert ex.headers["content-type"] == "application/json"
    assert ex.headers["http-referer"] == "https://example.test"
    assert ex.headers["x-openrouter-title"] == "Demo"
    assert ex.headers["x-title"] == "Demo"
    assert ex.headers["x-a"] == "1"


def test_caller_stream_options_win(server: ServerThread, mode: str) -> None:
    server.expect(sse_script(chunk(content="ok", finish="stop", usage=USAGE) + DONE))
    drive(mode, server.url, stream={"stream_options": {"include_usage": False}})
    assert server.exchanges[0].json()["stream_options"] == {"include_usage": False}


def test_no_key_needed_off_openrouter(
    server: ServerThread, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    server.expect(sse_script(chunk(content="ok", finish="stop", usage=USAGE) + DONE))
    out = drive(mode, server.url, client={"api_key": None})
    assert out.error is None
    assert "authorization" not in server.exchanges[0].headers


def test_environment_key_is_never_sent_to_another_host(
    server: ServerThread, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-fromenv")
    server.expect(sse_script(chunk(content="ok", finish="stop", usage=USAGE) + DONE))
    drive(mode, server.url, client={"api_key": None})
    assert "authorization" not in server.exchanges[0].headers


def test_key_from_environment_goes_to_openrouter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-fromenv")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = (
            b'data: {"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\n'
        )
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=body + b"data: [DONE]\n\n",
        )

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with rawsse.Client(http_client=http) as client:
        assert client.complete(model="m", messages=[]).text == "ok"
    assert seen[0].url.host == "openrouter.ai"
    assert seen[0].headers["authorization"] == "Bearer sk-or-v1-fromenv"


@pytest.mark.parametrize("cls", [rawsse.Client, rawsse.AsyncClient])
def test_missing_key_for_openrouter(monkeypatch: pytest.MonkeyPatch, cls: type[Any]) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    with pytest.raises(rawsse.ConfigurationError, match="OPENROUTER_API_KEY"):
        cls()


def test_text_stream_and_final(server: ServerThread, mode: str) -> None:
    body = fixture_body("keepalives_between")
    server.expect(sse_script(body, splits=[50, 400]))
    out = drive(mode, server.url, how="text")
    assert "".join(out.text) == expected("keepalives_between")["text"]
    assert out.text == [
        e.text for e in parse_chat_stream(body) if type(e) is TextDelta and e.index == 0
    ]
    server.expect(sse_script(body))
    out = drive(mode, server.url, how="final")
    assert out.result == accumulate(parse_chat_stream(body))
    assert out.result.status is ChatStatus.COMPLETE


def test_final_after_iteration_returns_same_result() -> None:
    body = chunk(content="a") + chunk(content="b", finish="stop", usage=USAGE) + DONE
    with running_server() as srv:
        srv.expect(sse_script(body))
        with (
            rawsse.Client(base_url=srv.url, api_key=KEY) as c,
            c.stream(model="m", messages=[]) as s,
        ):
            events = list(s)
            assert s.final() is s.final()
            assert s.final() == accumulate(events)
            assert s.final().text == "ab"


def test_response_and_generation_id(server: ServerThread, mode: str) -> None:
    body = chunk(content="hi", finish="stop", usage=USAGE) + DONE
    headers = (("Content-Type", "text/event-stream"), ("X-Generation-Id", "gen-header-7"))
    server.expect(sse_script(body, headers=headers))
    out = drive(mode, server.url)
    assert out.status_code == 200
    assert out.headers["x-generation-id"] == "gen-header-7"
    assert out.metrics.generation_id == "gen-header-7"


@pytest.mark.parametrize("how", ["complete", "plain"])
def test_complete(server: ServerThread, mode: str, how: str) -> None:
    body = fixture_body("tool_call")
    reference = accumulate(parse_chat_stream(body))
    if how == "complete":
        server.expect(sse_script(body))
    else:
        call = reference.choices[0].tool_calls[0]
        completion = {
            "id": reference.id,
            "object": "chat.completion",
            "created": reference.created,
            "model": reference.model,
            "provider": reference.provider,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "native_finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": call.id,
                                "type": "function",
                                "function": {"name": call.name, "arguments": call.arguments},
                            }
                        ],
                    },
                }
            ],
            "usage": reference.usage.raw if reference.usage else None,
        }
        server.expect(
            Script(
                headers=(("Content-Type", "application/json"),),
                steps=[Send(json.dumps(completion).encode())],
            )
        )
    out = drive(mode, server.url, how=how)
    assert out.error is None
    result = out.result
    assert result.status is ChatStatus.COMPLETE
    assert result.choices[0].tool_calls == reference.choices[0].tool_calls
    assert result.choices[0].tool_calls[0].parsed_arguments() == json.loads(
        reference.choices[0].tool_calls[0].arguments
    )
    assert result.usage == reference.usage
    assert server.exchanges[0].json()["stream"] is (how == "complete")
    assert server.exchanges[0].headers["accept"] == (
        "text/event-stream" if how == "complete" else "application/json"
    )


# -- errors before the stream -------------------------------------------------------

STATUS_CLASSES = [
    (400, rawsse.BadRequestError),
    (401, rawsse.AuthenticationError),
    (402, rawsse.PaymentRequiredError),
    (403, rawsse.PermissionDeniedError),
    (404, rawsse.NotFoundError),
    (408, rawsse.RequestTimeoutError),
    (429, rawsse.RateLimitError),
    (500, rawsse.InternalServerError),
    (502, rawsse.BadGatewayError),
    (503, rawsse.ServiceUnavailableError),
    (504, rawsse.InternalServerError),
    (413, rawsse.APIStatusError),
]


@pytest.mark.parametrize(("status", "cls"), STATUS_CLASSES)
def test_http_errors(server: ServerThread, mode: str, status: int, cls: type[Any]) -> None:
    metadata = {"reasons": ["violence"], "flagged_input": "...", "provider_name": "X"}
    body = json.dumps(
        {"error": {"code": status, "message": "nope", "metadata": metadata}, "user_id": "user_1"}
    )
    server.expect(error_script(status, body))
    out = drive(mode, server.url, client={"retries": 0})
    err = out.error
    assert type(err) is cls
    assert isinstance(err, rawsse.APIStatusError)
    assert (err.status, err.code, err.message, err.metadata) == (status, status, "nope", metadata)
    assert json.loads(err.body)["user_id"] == "user_1"
    assert str(err) == f"HTTP {status}: nope"
    assert len(server.exchanges) == 1


def test_rate_limit_retry_after(server: ServerThread, mode: str) -> None:
    path = FIXTURES / "http_429_rate_limited.json"
    body = path.read_bytes()
    server.expect(error_script(429, body, headers={"Retry-After": "4"}))
    out = drive(mode, server.url, client={"retries": 0})
    assert isinstance(out.error, rawsse.RateLimitError)
    assert out.error.retry_after == 4.0
    assert out.error.metadata is not None
    assert out.error.metadata["provider_name"] == "Google AI Studio"
    server.expect(error_script(429, body, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    out = drive(mode, server.url, client={"retries": 0})
    assert isinstance(out.error, rawsse.RateLimitError)
    assert out.error.retry_after == 0.0


def test_availability_error_without_code(server: ServerThread, mode: str) -> None:
    body = {
        "error": {
            "message": "No endpoints available",
            "error_type": "provider_unavailable",
            "http_status": 503,
            "availability": {"code": "no_endpoints", "retryable": True, "retry_after": 30},
            "metadata": {"previous_errors": [{"provider": "A", "code": 502, "status": 502}]},
        }
    }
    server.expect(error_script(503, json.dumps(body)))
    out = drive(mode, server.url, client={"retries": 0})
    err = out.error
    assert isinstance(err, rawsse.ServiceUnavailableError)
    assert err.code == "provider_unavailable"
    assert err.message == "No endpoints available"
    assert err.metadata is not None
    assert err.metadata["availability"]["code"] == "no_endpoints"
    assert err.metadata["previous_errors"][0]["provider"] == "A"


def test_error_body_not_json(server: ServerThread, mode: str) -> None:
    html = b"<html><body>502 Bad Gateway</body></html>"
    server.expect(Script(status=502, headers=(("Content-Type", "text/html"),), steps=[Send(html)]))
    out = drive(mode, server.url, client={"retries": 0})
    assert isinstance(out.error, rawsse.BadGatewayError)
    assert out.error.code is None
    assert out.error.body == html.decode()
    assert "502 Bad Gateway" in out.error.message


def test_unexpected_content_type(server: ServerThread, mode: str) -> None:
    body = b'{"choices": []}'
    server.expect(Script(headers=(("Content-Type", "application/json"),), steps=[Send(body)]))
    out = drive(mode, server.url)
    err = out.error
    assert isinstance(err, rawsse.UnexpectedContentType)
    assert (err.status, err.content_type, err.body) == (200, "application/json", body.decode())
    assert "text/event-stream" in str(err)


# -- errors during the stream ---------------------------------------------------------


@pytest.mark.parametrize("name", ["error_midstream", "error_after_length"])
def test_in_band_error_raises_after_earlier_events(
    server: ServerThread, mode: str, name: str
) -> None:
    body = fixture_body(name)
    reference = parse_chat_stream(body)
    before, in_band = until_error(reference)
    assert in_band is not None
    server.expect(sse_script(body, splits=[len(body) // 2]))
    out = drive(mode, server.url)
    err = out.error
    assert isinstance(err, rawsse.StreamError)
    assert out.events == before
    assert (err.code, err.metadata, err.raw) == (in_band.code, in_band.metadata, in_band.raw)
    assert err.partial is out.result
    assert err.partial.status is ChatStatus.ERROR
    assert err.partial.error == in_band
    assert err.partial.text == accumulate(before).text
    if name == "error_after_length":  # usage rode on the error chunk: kept
        assert err.partial.usage == accumulate(reference).usage
    assert out.metrics.status == "error"


def test_in_band_error_can_be_yielded(server: ServerThread, mode: str) -> None:
    body = fixture_body("error_midstream")
    server.expect(sse_script(body))
    out = drive(mode, server.url, client={"in_band_error": "yield"})
    assert out.error is None
    assert out.events == parse_chat_stream(body)
    assert out.result.status is ChatStatus.ERROR


def test_malformed_chunk(server: ServerThread, mode: str) -> None:
    good = chunk(content="fine")
    body = good + b"data: : OPENROUTER PROCESSING\n\n" + chunk(content="x", finish="stop") + DONE
    server.expect(sse_script(body))
    out = drive(mode, server.url)
    err = out.error
    assert isinstance(err, rawsse.MalformedChunk)
    assert err.payload == ": OPENROUTER PROCESSING"
    assert out.events == parse_chat_stream(good)
    assert err.partial is not None
    assert err.partial.text == "fine"
    assert err.partial.status is ChatStatus.ERROR


def test_eof_before_done(server: ServerThread, mode: str) -> None:
    body = fixture_body("truncated")
    server.expect(sse_script(body))
    out = drive(mode, server.url)
    err = out.error
    assert isinstance(err, rawsse.IncompleteStreamError)
    assert out.events == parse_chat_stream(body)
    assert err.partial is out.result
    assert err.partial.status is ChatStatus.TRUNCATED
    assert err.partial.text == accumulate(out.events).text


def test_reset_mid_stream(server: ServerThread, mode: str) -> None:
    head = KEEPALIVE + chunk(content="Hello") + chunk(content=" wor")
    server.expect(Script(steps=[Send(head), Reset()]))
    out = drive(mode, server.url)
    err = out.error
    assert isinstance(err, rawsse.IncompleteStreamError)
    assert out.events == parse_chat_stream(head)
    assert err.partial is not None
    assert err.partial.text == "Hello wor"
    assert err.partial.status is ChatStatus.TRUNCATED
    assert len(server.exchanges) == 1  # content arrived: never retried


def test_every_error_is_a_rawsse_error_with_partial(server: ServerThread, mode: str) -> None:
    server.expect(Script(steps=[Send(chunk(content="a")), Reset()]))
    out = drive(mode, server.url)
    assert isinstance(out.error, rawsse.RawSSEError)
    assert isinstance(out.error, rawsse.StreamInterrupted)
    assert out.error.partial is not None
    assert out.error.partial.text == "a"


def test_record_to_writes_a_cassette(server: ServerThread, mode: str, tmp_path: Path) -> None:
    try:
        from rawsse.testing import load_cassette
    except ImportError:  # the public module lands separately
        from rawsse._cassette import load_cassette
    body = fixture_body("plain_text")
    server.expect(sse_script(body, splits=[100, 1000]))
    out = drive(mode, server.url, client={"record_to": tmp_path})
    assert out.error is None
    (path,) = tmp_path.iterdir()
    assert KEY not in path.read_text()
    cassette = load_cassette(path)
    assert cassette.status == 200
    assert b"".join(data for _, data in cassette.chunks) == body
    assert cassette.end == "eof"
    assert cassette.request["headers"]["authorization"] == "REDACTED"
    assert cassette.request["body"]["model"] == "test/model"


def test_compressed_stream_is_decoded() -> None:
    # Any OpenAI-compatible server may gzip its event stream; the decoder must see plain bytes.
    import gzip

    body = fixture_body("plain_text")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream", "content-encoding": "gzip"},
            content=iter([gzip.compress(body)]),
        )

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with rawsse.Client(base_url="http://test/v1", http_client=http) as client:
        result = client.complete(model="m", messages=[])
    assert result == rawsse.accumulate(rawsse.parse_chat_stream(body))
