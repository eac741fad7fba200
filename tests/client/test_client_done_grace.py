"""After ``[DONE]`` the clients read on for ``DONE_GRACE`` only, on sync, asyncio and
trio, over real TCP: bytes within the grace are recorded, a silent or broken
connection after it ends the stream as complete, and it is closed."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from rawsse import ChatStatus, Done, StreamMetrics, TextDelta, Timeouts
from rawsse._base_client import DONE_GRACE, StreamCore
from rawsse._cassette import load_cassette
from rawsse._httpx_adapter import translate_error
from rawsse.inspect import inspect_cassette
from tests import server as fx
from tests.server import ServerThread

# Generous: a stream that waited for any of these limits after [DONE] fails the test.
LIMITS = Timeouts(connect=5.0, first_token=5.0, idle=3.0, stall=5.0, total=8.0)
HEAD = fx.chunk(content="Hel")
LAST = fx.chunk(content="lo", finish="stop", usage=fx.USAGE) + fx.DONE
# A stream that waited for the server (idle: 3 s) takes that long; one that ended at
# the grace takes DONE_GRACE plus the exchange, well under this on a loaded machine.
FAST = DONE_GRACE + 1.0


def run(server: ServerThread, mode: str, after: list[fx.Step], **client: object) -> fx.Outcome:
    server.expect(fx.Script(steps=[fx.Send(HEAD), fx.Send(LAST), *after]))
    return fx.drive(mode, server.url, client={"timeout": LIMITS, "retries": 0, **client})


def assert_complete(out: fx.Outcome) -> None:
    assert out.error is None
    result = out.result
    assert result.text == "Hello"
    assert result.status is ChatStatus.COMPLETE
    assert result.usage is not None
    assert out.metrics.status == "complete"


def test_the_grace_is_short() -> None:
    assert 0.1 <= DONE_GRACE <= 0.5


def test_a_server_silent_after_done_is_closed_at_the_grace_and_recorded(
    server: ServerThread, mode: str, tmp_path: Path
) -> None:
    out = run(server, mode, [fx.Sleep(6)], record_to=tmp_path)
    assert_complete(out)
    assert out.ended - out.started < FAST
    assert server.wait_disconnect() - out.started < FAST  # the connection was closed
    (path,) = tmp_path.iterdir()
    cassette = load_cassette(path)
    assert b"".join(data for _, data in cassette.chunks) == HEAD + LAST
    # The server never ended the body: the sync read timed out (``error``), the async
    # one was stopped and the response closed (``closed``); never ``eof``.
    if mode == "sync":
        assert (cassette.end, (cassette.error or "").split(":")[0]) == ("error", "ReadTimeout")
    else:
        assert (cassette.end, cassette.error) == ("closed", None)
    # and the recording still reads as the complete stream it was
    assert inspect_cassette(cassette).status == "complete"


def test_bytes_after_done_within_the_grace_are_recorded_and_ignored(
    server: ServerThread, mode: str, tmp_path: Path
) -> None:
    tail = [fx.KEEPALIVE, b"data: {not json}\n\n", fx.chunk(content="late")]
    out = run(server, mode, [fx.Sleep(0.02), *(fx.Send(t) for t in tail)], record_to=tmp_path)
    assert_complete(out)
    assert [e.text for e in out.events if isinstance(e, TextDelta)] == ["Hel", "lo"]
    assert type(out.events[-1]) is Done
    assert out.metrics.bytes_received == len(HEAD + LAST + b"".join(tail))
    (path,) = tmp_path.iterdir()
    cassette = load_cassette(path)
    assert b"".join(data for _, data in cassette.chunks) == HEAD + LAST + b"".join(tail)
    assert cassette.end == "eof"  # the server closed within the grace


def test_bytes_that_keep_coming_after_done_do_not_extend_the_grace(
    server: ServerThread, mode: str
) -> None:
    out = run(server, mode, [s for _ in range(60) for s in (fx.Sleep(0.05), fx.Send(fx.KEEPALIVE))])
    assert_complete(out)
    assert out.ended - out.started < FAST
    server.wait_disconnect()


def test_a_connection_reset_after_done_ends_the_stream_complete(
    server: ServerThread, mode: str
) -> None:
    out = run(server, mode, [fx.Sleep(0.02), fx.Reset()])
    assert_complete(out)


def test_a_compressed_stream_silent_after_done_is_complete(server: ServerThread, mode: str) -> None:
    # The gzip trailer never comes: nothing after [DONE] is decoded or checked.
    gzip = zlib.compressobj(wbits=31)
    pieces = [gzip.compress(HEAD) + gzip.flush(zlib.Z_SYNC_FLUSH)]
    pieces.append(gzip.compress(LAST) + gzip.flush(zlib.Z_SYNC_FLUSH))
    headers = (*fx.SSE_HEADERS, ("Content-Encoding", "gzip"))
    server.expect(fx.Script(headers=headers, steps=[*(fx.Send(p) for p in pieces), fx.Sleep(6)]))
    out = fx.drive(mode, server.url, client={"timeout": LIMITS, "retries": 0})
    assert_complete(out)
    assert out.ended - out.started < FAST


# -- the core, without I/O -------------------------------------------------------------


def core(now: float = 100.0) -> StreamCore:
    seen: list[StreamMetrics] = []
    c = StreamCore(
        timeouts=LIMITS,
        now=now,
        retries=0,
        in_band_error="raise",
        on_metrics=seen.append,
        retry_delay=0.5,
        max_retry_delay=8.0,
        translate=translate_error,
    )
    c.begin_attempt(now)
    assert c.check_head(200, {"content-type": "text/event-stream"})
    return c


def test_the_read_deadline_becomes_the_grace_once_done_arrives() -> None:
    c = core()
    assert c.read_deadline(100.0) == 100.0 + LIMITS.idle
    c.feed(HEAD, 100.5)
    assert c.done_at is None
    events = c.feed(LAST, 101.0)
    assert type(events[-1]) is Done
    assert c.done_at == 101.0
    assert c.read_deadline(101.1) == 101.0 + DONE_GRACE
    assert c.feed(b"data: {broken\n\n" + b"x" * 10_000, 101.2) == []  # never decoded
    assert c.pending is None
    assert c.ends_body(TimeoutError()) is True
    assert c.ends_body(KeyboardInterrupt()) is False  # a cancellation stays one
    assert c.end_of_body(101.3) == []
    assert c.finished
    assert c.result.status is ChatStatus.COMPLETE


def test_before_done_a_failed_read_is_a_failure() -> None:
    c = core()
    c.feed(HEAD, 100.5)
    assert c.ends_body(TimeoutError()) is False


@pytest.mark.parametrize("at", [0, 1, 7])
def test_done_split_anywhere_starts_the_grace_when_it_completes(at: int) -> None:
    c = core()
    c.feed(HEAD + LAST[: len(LAST) - len(fx.DONE) + at], 100.5)
    assert c.done_at is None
    c.feed(LAST[len(LAST) - len(fx.DONE) + at :], 100.7)
    assert c.done_at == 100.7
