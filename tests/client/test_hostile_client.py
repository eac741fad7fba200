"""The client's promises against a hostile server, over real TCP, on sync, asyncio and trio.

Floods, endless and compressed bodies and gzip bombs: the deadlines hold while
bytes keep arriving, bodies are read with a bound, every fault is rawsse's own
error carrying ``.partial``, and memory stays bounded.  Margins are generous
(a loaded 2-core machine), but every deadline must really fire.
"""

from __future__ import annotations

import os
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest

import rawsse
from rawsse import BodyLimits, ChatStatus, Timeouts
from tests.hostile_server import (
    GZIP_SSE,
    HostileServer,
    Plan,
    bomb,
    content_chunk,
    endless,
)

KEY = "sk-or-v1-HOSTILE0123456789abcdefSECRET"
MESSAGES = [{"role": "user", "content": "hi"}]
MARGIN = 1.5  # seconds a deadline may be late on a loaded 2-core machine
KEEPALIVE = b": OPENROUTER PROCESSING\n\n"
JSON = (("Content-Type", "application/json"),)
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


@dataclass
class Run:
    error: BaseException | None
    result: Any
    metrics: Any
    events: int
    elapsed: float
    peak: int
    """How far the process's resident memory grew (bytes) while the request ran."""


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples the resident memory every 5 ms in a thread (no tracing overhead)."""

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def growth(self) -> int:
        return self.peak - self.base


def run(
    mode: str,
    url: str,
    *,
    client: dict[str, Any] | None = None,
    per_event: float = 0.0,
    plain: bool = False,
    key: str = KEY,
) -> Run:
    """One request on the sync client or the async one (``mode`` = asyncio / trio),
    consuming ``per_event`` seconds per event; rawsse's errors are caught, nothing else."""
    ckw = {"api_key": key, "base_url": url, "retries": 0, **(client or {})}
    with PeakRSS() as memory:
        started = time.monotonic()
        if mode == "sync":
            out = _sync(ckw, per_event, plain)
        else:
            out = anyio.run(_async, ckw, per_event, plain, backend=mode)
        elapsed = time.monotonic() - started
    return Run(*out, elapsed=elapsed, peak=memory.growth)


def _sync(ckw: dict[str, Any], per_event: float, plain: bool) -> tuple[Any, ...]:
    error: BaseException | None = None
    events = 0
    with rawsse.Client(**ckw) as client:
        if plain:
            try:
                return None, client.complete(model="m", messages=MESSAGES, stream=False), None, 0
            except rawsse.RawSSEError as exc:
                return exc, None, None, 0
        stream = client.stream(model="m", messages=MESSAGES)
        try:
            with stream:
                for _ in stream:
                    events += 1
                    if per_event:
                        time.sleep(per_event)
        except rawsse.RawSSEError as exc:
            error = exc
        return error, stream.result, stream.metrics, events


async def _async(ckw: dict[str, Any], per_event: float, plain: bool) -> tuple[Any, ...]:
    error: BaseException | None = None
    events = 0
    async with rawsse.AsyncClient(**ckw) as client:
        if plain:
            try:
                result = await client.complete(model="m", messages=MESSAGES, stream=False)
            except rawsse.RawSSEError as exc:
                return exc, None, None, 0
            return None, result, None, 0
        stream = client.stream(model="m", messages=MESSAGES)
        try:
            async with stream:
                async for _ in stream:
                    events += 1
                    if per_event:
                        time.sleep(per_event)  # noqa: ASYNC251 - a consumer busy with the CPU
        except rawsse.RawSSEError as exc:
            error = exc
        return error, stream.result, stream.metrics, events


def assert_partial(err: BaseException | None, status: ChatStatus) -> None:
    """Every stream-ending error carries the result so far, with the final status."""
    assert isinstance(err, rawsse.RawSSEError)
    partial = getattr(err, "partial", None)
    assert partial is not None, f"{type(err).__name__} without .partial"
    assert partial.status is status


# -- deadlines hold while bytes keep arriving -------------------------------------------


def test_first_token_and_total_fire_under_a_keepalive_flood(
    hostile: HostileServer, mode: str
) -> None:
    url = hostile.url("keepalive-flood", Plan(body=endless(KEEPALIVE, 2000)))
    timeouts = Timeouts(first_token=2, total=5)
    # A consumer doing a little work per event: the read's buffer is never empty.
    out = run(mode, url, client={"timeout": timeouts}, per_event=0.0001)
    assert isinstance(out.error, rawsse.FirstTokenTimeout)
    assert 2 <= out.elapsed <= 2 + MARGIN
    assert out.events > 1000  # it really was a flood
    assert_partial(out.error, ChatStatus.TIMED_OUT)

    out = run(mode, url, client={"timeout": Timeouts(first_token=None, total=2)}, per_event=0.0001)
    assert isinstance(out.error, rawsse.TotalTimeout)
    assert 2 <= out.elapsed <= 2 + MARGIN


def test_total_fires_for_a_fast_stream_read_by_a_slow_consumer(
    hostile: HostileServer, mode: str
) -> None:
    url = hostile.url("content-flood", Plan(body=endless(content_chunk("x"), 500)))
    out = run(mode, url, client={"timeout": Timeouts(total=2)}, per_event=0.002)
    assert isinstance(out.error, rawsse.TotalTimeout)
    assert 2 <= out.elapsed <= 2 + MARGIN
    assert_partial(out.error, ChatStatus.TIMED_OUT)
    # ``partial`` holds all that was received, events of the last read not yet handed out too.
    assert set(out.error.partial.text) == {"x"}


def test_stall_fires_when_only_keepalives_flood_after_content(
    hostile: HostileServer, mode: str
) -> None:
    def body() -> Iterator[bytes]:
        yield content_chunk("Hi")
        while True:
            yield KEEPALIVE * 2000

    url = hostile.url("stall-flood", Plan(body=body))
    out = run(mode, url, client={"timeout": Timeouts(stall=1.5, total=30)})
    assert isinstance(out.error, rawsse.StallTimeout)
    assert 1.5 <= out.elapsed <= 1.5 + MARGIN
    assert out.error.partial.text == "Hi"


# A stream whose ``total`` passes while httpx is still writing the request (300
# connections at once on a loaded machine) leaves httpx's own request-body generator
# to the garbage collector, which trio reports; the stream itself ends as it must.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.anyio
async def test_three_hundred_concurrent_streams_each_end_at_total(
    hostile: HostileServer,
) -> None:
    url = hostile.url("trickle", Plan(body=endless(content_chunk("y"), 10), delay=0.1))
    ends: list[tuple[BaseException | None, float]] = []

    async def one(client: rawsse.AsyncClient) -> None:
        stream = client.stream(model="m", messages=MESSAGES)
        started = anyio.current_time()
        try:
            async with stream:
                async for _ in stream:
                    pass
        except rawsse.RawSSEError as exc:
            ends.append((exc, anyio.current_time() - started))
        else:
            ends.append((None, anyio.current_time() - started))

    timeouts = Timeouts(connect=10, total=0.5)
    with anyio.fail_after(30):
        async with (
            rawsse.AsyncClient(api_key=KEY, base_url=url, timeout=timeouts) as client,
            anyio.create_task_group() as group,
        ):
            for _ in range(300):
                group.start_soon(one, client)
    assert len(ends) == 300
    assert all(isinstance(err, rawsse.TotalTimeout) for err, _ in ends)
    assert max(took for _, took in ends) <= 0.5 + MARGIN


# -- bodies read with a bound -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "body", "error"),
    [
        pytest.param(500, JSON, endless(b"x" * 65536), rawsse.InternalServerError, id="500"),
        pytest.param(
            503,
            (("Content-Type", "application/json"), ("Content-Encoding", "gzip")),
            bomb(b"{"),
            rawsse.ServiceUnavailableError,
            id="gzip-503-bomb",
        ),
        pytest.param(
            200,
            (("Content-Type", "text/html"),),
            endless(b"<p>" * 20000),
            rawsse.UnexpectedContentType,
            id="200-html",
        ),
    ],
)
def test_an_endless_error_body_is_read_up_to_the_cap(
    hostile: HostileServer,
    mode: str,
    status: int,
    headers: tuple[tuple[str, str], ...],
    body: Any,
    error: type[Exception],
) -> None:
    url = hostile.url(f"endless-{status}", Plan(status=status, headers=headers, body=body))
    out = run(mode, url)
    assert isinstance(out.error, error)
    assert 0 < len(out.error.body) <= 64 * 1024  # type: ignore[attr-defined]
    assert out.elapsed < 5
    assert out.peak < 32 * MiB

    small = BodyLimits(error_body=100)
    out = run(mode, url, client={"body_limits": small})
    assert isinstance(out.error, error)
    assert len(out.error.body) <= 100  # type: ignore[attr-defined]


def test_a_gzip_bomb_event_stream_is_refused_by_the_inflation_bound(
    hostile: HostileServer, mode: str
) -> None:
    url = hostile.url("bomb", Plan(headers=GZIP_SSE, body=bomb(b"\n", mib=2048)))
    out = run(mode, url)
    assert isinstance(out.error, rawsse.BodyError)
    assert "BodyLimits.inflation" in str(out.error)
    assert out.elapsed < 5
    assert out.peak < 32 * MiB
    assert_partial(out.error, ChatStatus.ERROR)


def test_a_gzip_bomb_event_stream_without_the_bound_ends_at_total(
    hostile: HostileServer, mode: str
) -> None:
    url = hostile.url("bomb", Plan(headers=GZIP_SSE, body=bomb(b"\n", mib=2048)))
    client = {"timeout": Timeouts(total=2), "body_limits": BodyLimits(inflation=None)}
    out = run(mode, url, client=client)
    assert isinstance(out.error, rawsse.TotalTimeout)
    assert 2 <= out.elapsed <= 2 + MARGIN
    assert out.peak < 32 * MiB
    assert_partial(out.error, ChatStatus.TIMED_OUT)


def test_a_gzip_event_stream_decodes(hostile: HostileServer, mode: str) -> None:
    plain = content_chunk("Hel") + content_chunk("lo") + b"data: [DONE]\n\n"
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    pieces = [c.compress(plain[:50]) + c.flush(zlib.Z_SYNC_FLUSH), c.compress(plain[50:])]
    pieces.append(c.flush())
    url = hostile.url("gzip-ok", Plan(headers=GZIP_SSE, body=lambda: pieces))
    out = run(mode, url)
    assert out.error is None
    assert out.result.text == "Hello"
    assert out.result.status is ChatStatus.COMPLETE
    assert hostile.plans["gzip-ok"].requests[-1]["accept-encoding"] == "gzip, deflate"


def test_an_endless_plain_answer_is_refused_at_the_cap(hostile: HostileServer, mode: str) -> None:
    url = hostile.url("plain-endless", Plan(headers=JSON, body=endless(b"[" * 65536)))
    out = run(mode, url, plain=True, client={"body_limits": BodyLimits(completion_body=MiB)})
    assert isinstance(out.error, rawsse.BodyError)
    assert "BodyLimits.completion_body" in str(out.error)
    assert out.peak < 32 * MiB


def test_a_trickling_plain_answer_ends_at_total(hostile: HostileServer, mode: str) -> None:
    url = hostile.url("plain-trickle", Plan(headers=JSON, body=endless(b" "), delay=0.05))
    out = run(mode, url, plain=True, client={"timeout": Timeouts(total=1)})
    assert isinstance(out.error, rawsse.TotalTimeout)
    assert 1 <= out.elapsed <= 1 + MARGIN


# -- foreign exceptions become rawsse's, with .partial -----------------------------------


def test_gzip_going_bad_mid_stream(hostile: HostileServer, mode: str) -> None:
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    good = c.compress(content_chunk("Hello")) + c.flush(zlib.Z_SYNC_FLUSH)
    url = hostile.url("gzip-bad", Plan(headers=GZIP_SSE, body=lambda: [good, b"\xff" * 64]))
    out = run(mode, url)
    assert isinstance(out.error, rawsse.BodyError)
    assert "damaged" in str(out.error)
    assert_partial(out.error, ChatStatus.ERROR)
    assert out.error.partial.text == "Hello"
    assert out.result.status is ChatStatus.ERROR


def test_an_unknown_content_encoding_is_a_body_error(hostile: HostileServer, mode: str) -> None:
    headers = (("Content-Type", "text/event-stream"), ("Content-Encoding", "br"))
    url = hostile.url("brotli", Plan(headers=headers, body=lambda: [b"\x0b\x02\x80"]))
    out = run(mode, url)
    assert isinstance(out.error, rawsse.BodyError)
    assert "'br'" in str(out.error)


def test_plain_answer_with_a_lone_surrogate(hostile: HostileServer, mode: str) -> None:
    doc = (
        b'{"id":"gen-1","choices":[{"index":0,"message":{"role":"assistant",'
        b'"content":"a\\ud83d"},"finish_reason":"stop"}]}'
    )
    url = hostile.url("plain-surrogate", Plan(headers=JSON, body=lambda: [doc]))
    out = run(mode, url, plain=True)
    assert out.error is None
    assert out.result.text == "a\ufffd"
    out.result.text.encode("utf-8")


def test_plain_answer_nested_fifty_thousand_deep(hostile: HostileServer, mode: str) -> None:
    doc = b'{"choices":[],"x":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    url = hostile.url("plain-deep", Plan(headers=JSON, body=lambda: [doc]))
    out = run(mode, url, plain=True)
    assert isinstance(out.error, rawsse.UnexpectedContentType)


def test_huge_completion_tokens_leave_metrics_readable(hostile: HostileServer, mode: str) -> None:
    usage = {"prompt_tokens": 1, "completion_tokens": 10**400, "total_tokens": 10**400}
    body = [content_chunk("a"), content_chunk("b", usage=usage), b"data: [DONE]\n\n"]
    url = hostile.url("huge-usage", Plan(body=lambda: body, delay=0.01))
    out = run(mode, url)
    assert isinstance(out.error, rawsse.RawSSEError)
    assert out.metrics.tokens_per_second is None
    out.metrics.log_line()


def test_retry_after_out_of_range_is_clamped(hostile: HostileServer, mode: str) -> None:
    doc = b'{"error":{"message":"slow down","code":429,"availability":{"retry_after":1e400}}}'
    url = hostile.url("retry-after", Plan(status=429, headers=JSON, body=lambda: [doc]))
    out = run(mode, url, client={"retries": 2})
    assert isinstance(out.error, rawsse.RateLimitError)
    assert out.error.retry_after == 86400.0
    assert len(hostile.plans["retry-after"].requests) == 1  # a day's wait is not retried


# -- faults keep the text received --------------------------------------------------------


def test_a_line_over_max_line_bytes_keeps_the_partial(hostile: HostileServer, mode: str) -> None:
    def body() -> Iterator[bytes]:
        yield content_chunk("Hello")
        yield b"data: "
        while True:
            yield b"a" * 65536

    url = hostile.url("long-line", Plan(body=body))
    out = run(mode, url)
    assert isinstance(out.error, rawsse.SSEProtocolError)
    assert_partial(out.error, ChatStatus.ERROR)
    assert out.error.partial.text == "Hello"
    assert out.result.status is ChatStatus.ERROR
    assert out.metrics.status == "error"


# -- the key ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [f"{KEY}\n", f"{KEY}\r\n", f"  {KEY}\t "])
def test_a_key_with_surrounding_whitespace_is_stripped(
    hostile: HostileServer, mode: str, key: str
) -> None:
    done = [content_chunk("ok", usage={"prompt_tokens": 1}), b"data: [DONE]\n\n"]
    url = hostile.url("key", Plan(body=lambda: done))
    out = run(mode, url, key=key)
    assert out.error is None
    assert out.result.text == "ok"
    assert hostile.plans["key"].requests[-1]["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("key", [f"{KEY[:10]}\n{KEY[10:]}", f"{KEY}\x00", f"{KEY}\u00e9"])
@pytest.mark.parametrize("cls", [rawsse.Client, rawsse.AsyncClient])
def test_a_key_with_a_control_character_is_refused_without_echoing_it(
    key: str, cls: type[Any]
) -> None:
    with pytest.raises(rawsse.ConfigurationError) as info:
        cls(api_key=key, base_url="http://127.0.0.1:9/v1")
    assert KEY[:10] not in str(info.value)
    assert KEY[10:] not in str(info.value)


def test_the_key_is_scrubbed_from_a_lower_layer_message(mode: str) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused {request.headers['authorization']!r}")

    async def arefuse(request: httpx.Request) -> httpx.Response:
        return refuse(request)

    if mode == "sync":
        http: Any = httpx.Client(transport=httpx.MockTransport(refuse))
    else:
        http = httpx.AsyncClient(transport=httpx.MockTransport(arefuse))
    out = run(mode, "http://127.0.0.1:9/v1", client={"http_client": http})
    assert isinstance(out.error, rawsse.APIConnectionError)
    assert "refused" in str(out.error)
    assert KEY not in str(out.error)
    assert "***" in str(out.error)


def test_httpx_decoding_error_from_a_callers_client_is_translated(mode: str) -> None:
    def damaged(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/event-stream", "content-encoding": "gzip"}
        return httpx.Response(200, headers=headers, content=b"\x1f\x8b\x08\x00" + b"\xff" * 40)

    async def adamaged(request: httpx.Request) -> httpx.Response:
        return damaged(request)

    if mode == "sync":
        http: Any = httpx.Client(transport=httpx.MockTransport(damaged))
    else:
        http = httpx.AsyncClient(transport=httpx.MockTransport(adamaged))
    out = run(mode, "http://127.0.0.1:9/v1", client={"http_client": http})
    assert isinstance(out.error, rawsse.BodyError)
    assert "DecodingError" in str(out.error)


def test_a_small_gzip_read_that_inflates_past_one_step_is_decoded_whole(
    hostile: HostileServer, mode: str
) -> None:
    # 600 KiB of text in a few hundred compressed bytes, then silence: every byte must
    # come out of the inflater before the silence, not when more input arrives.
    text = "a" * (600 * 1024)
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    piece = c.compress(content_chunk(text) + content_chunk("!")) + c.flush(zlib.Z_SYNC_FLUSH)
    url = hostile.url("gzip-steps", Plan(headers=GZIP_SSE, body=lambda: [piece], stall=5))
    out = run(mode, url, client={"timeout": Timeouts(idle=1)})
    assert isinstance(out.error, rawsse.IdleTimeout)
    assert out.error.partial.text == text + "!"


def test_body_limits_validate() -> None:
    assert BodyLimits() == BodyLimits(error_body=65536, completion_body=64 * MiB, inflation=100.0)
    for bad in ({"error_body": 0}, {"completion_body": True}, {"inflation": 0.5}):
        with pytest.raises(ValueError, match="BodyLimits"):
            BodyLimits(**bad)  # type: ignore[arg-type]
    assert BodyLimits(inflation=None).inflation is None
