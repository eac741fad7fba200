"""One rule for a stream's status: the accumulator, the client, the inspector and
``rawsse replay``'s exit code all decide through ``rawsse.stream_status``.

Every fixture and corpus stream is fed whole, cut just before ``data: [DONE]``
and cut at half its length; every reader must give the same status, and the
inspector never raises.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import rawsse
from rawsse import ChatStatus, MalformedChunk, accumulate, parse_chat_stream, stream_status
from rawsse._cli.replay import exit_code
from rawsse.inspect import inspect_stream
from rawsse.testing import Cassette, ReplayTransport
from tests.conftest import corpus_files, fixture_files

STREAMS = [*fixture_files(), *corpus_files()]
DONE_LINE = b"data: [DONE]"


def cuts(body: bytes) -> dict[str, bytes]:
    """The stream whole, cut just before its last ``[DONE]``, and cut at half length."""
    out = {"whole": body, "half": body[: len(body) // 2]}
    at = body.rfind(DONE_LINE)
    if at >= 0:
        out["before_done"] = body[:at]
    return out


def client_status(body: bytes) -> ChatStatus | type[Exception]:
    """What ``rawsse.Client`` says at the end of this body (or the error class it raises)."""
    transport = ReplayTransport(Cassette.from_body(body))
    http = httpx.Client(transport=transport)
    with rawsse.Client(api_key="k", http_client=http, retries=0) as client:
        stream = client.stream(model="m", messages=[{"role": "user", "content": "hi"}])
        try:
            with stream:
                for _ in stream:
                    pass
        except MalformedChunk:
            return MalformedChunk
        except rawsse.RawSSEError:
            pass
        assert stream.result is not None
        return stream.result.status


CASES = [
    pytest.param(path, name, id=f"{path.name}-{name}")
    for path in STREAMS
    for name in ("whole", "before_done", "half")
]


@pytest.mark.parametrize(("path", "cut"), CASES)
def test_every_reader_gives_the_same_status(path: Path, cut: str) -> None:
    body = cuts(path.read_bytes()).get(cut)
    if body is None:
        pytest.skip("no [DONE] to cut before")
    report = inspect_stream(body)  # never raises
    try:
        parsed = accumulate(parse_chat_stream(body))
    except MalformedChunk:
        # The strict readers stop at a payload that is not a chat chunk; the
        # inspector reports it and reads on.
        assert client_status(body) is MalformedChunk
        assert {"invalid_json", "malformed_chunk"} & set(report.anomaly_kinds())
        return
    assert client_status(body) == parsed.status
    assert report.status == parsed.status
    assert exit_code(report) == (0 if parsed.status == "complete" else 1)


def test_finish_without_usage_or_done_is_truncated() -> None:
    body = (
        b'data: {"id":"g","choices":[{"index":0,"delta":{"content":"hi"},'
        b'"finish_reason":"stop"}]}\n\n'
    )
    assert accumulate(parse_chat_stream(body)).status == "truncated"
    assert inspect_stream(body).status == "truncated"
    assert client_status(body) == "truncated"


@pytest.mark.parametrize(
    ("facts", "status"),
    [
        ({"done": True, "finished": False, "usage": False}, "complete"),
        ({"done": False, "finished": True, "usage": True}, "complete"),
        ({"done": False, "finished": True, "usage": False}, "truncated"),
        ({"done": False, "finished": False, "usage": True}, "truncated"),
        ({"done": True, "finished": True, "usage": True, "error": True}, "error"),
        # after [DONE] nothing is lost, however the body ended (the clients close
        # it a short grace after [DONE])
        ({"done": True, "finished": True, "usage": True, "end": "closed"}, "complete"),
        ({"done": True, "finished": True, "usage": True, "end": "error"}, "complete"),
        ({"done": True, "finished": True, "usage": True, "end": "missing"}, "complete"),
        ({"done": False, "finished": True, "usage": True, "end": "closed"}, "cancelled"),
        ({"done": False, "finished": True, "usage": True, "end": "error"}, "truncated"),
        ({"done": False, "finished": True, "usage": True, "end": "missing"}, "truncated"),
        ({"done": True, "finished": True, "usage": True, "end": "eof"}, "complete"),
    ],
)
def test_the_rule(facts: dict[str, object], status: str) -> None:
    assert stream_status(**facts) == status  # type: ignore[arg-type]
