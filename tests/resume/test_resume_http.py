"""Resume over real TCP: the fixture server cuts, stalls and fails streams, and the
clients (sync, asyncio, trio) continue them from a prefill into one stream."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import pytest

from rawsse import (
    AsyncClient,
    ChatResult,
    ChatStatus,
    Client,
    Continued,
    Finish,
    InBandError,
    IncompleteStreamError,
    RawSSEError,
    ReasoningDelta,
    Resume,
    StreamError,
    TextDelta,
    Timeouts,
    ToolCallDelta,
    TotalTimeout,
    accumulate,
    parse_chat_stream,
)
from rawsse._cassette import load_cassette
from rawsse.testing import FixtureServer

from ..conftest import FIXTURES

MESSAGES = [{"role": "user", "content": "q"}]
RESUME = Resume()
CASSETTES = FIXTURES / "cassettes"
_tokens = itertools.count()


@pytest.fixture(scope="module")
def fixtures() -> Iterator[FixtureServer]:
    with FixtureServer(CASSETTES, speed=0) as server:
        yield server


@dataclass
class Run:
    events: list[Any]
    error: BaseException | None
    result: ChatResult
    metrics: Any
    seconds: float


@dataclass(frozen=True)
class Call:
    headers: dict[str, str]
    resume: Resume | None = RESUME
    params: tuple[tuple[str, Any], ...] = ()
    timeout: Timeouts | None = None
    in_band_error: Literal["raise", "yield"] = "raise"

    def arguments(self) -> dict[str, Any]:
        """This call's ``stream()`` arguments (``resume=None`` here means none at all)."""
        return {
            "model": "m",
            "messages": MESSAGES,
            "extra_headers": self.headers,
            "resume": self.resume if self.resume is not None else False,
            "timeout": self.timeout,
            "in_band_error": self.in_band_error,
            **dict(self.params),
        }


def once() -> str:
    """A fresh ``X-Rawsse-Once`` token: the faults hit the first request only."""
    return f"t{next(_tokens)}-{time.monotonic_ns()}"


def run_all(mode: str, base_url: str, calls: list[Call]) -> list[Run]:
    """Each call as one stream, on the sync client or the async one (asyncio, trio)."""
    if mode == "sync":
        return _run_sync(base_url, calls)
    return anyio.run(_run_async, base_url, calls, backend=mode)


def _run_sync(base_url: str, calls: list[Call]) -> list[Run]:
    runs = []
    with Client(base_url=base_url, api_key="", retries=0) as client:
        for call in calls:
            events: list[Any] = []
            error = None
            started = time.monotonic()
            stream = client.stream(**call.arguments())
            try:
                with stream:
                    events.extend(stream)
            except RawSSEError as exc:
                error = exc
            seconds = time.monotonic() - started
            runs.append(Run(events, error, stream.result, stream.metrics, seconds))
    return runs


async def _run_async(base_url: str, calls: list[Call]) -> list[Run]:
    runs = []
    async with AsyncClient(base_url=base_url, api_key="", retries=0) as client:
        for call in calls:
            events: list[Any] = []
            error = None
            started = time.monotonic()
            stream = client.stream(**call.arguments())
            try:
                async with stream:
                    async for event in stream:
                        events.append(event)  # noqa: PERF401 - keep what came before an error
            except RawSSEError as exc:
                error = exc
            seconds = time.monotonic() - started
            runs.append(Run(events, error, stream.result, stream.metrics, seconds))
    return runs


def body_of(name: str) -> bytes:
    return load_cassette(CASSETTES / f"{name}.jsonl").body


def offsets(body: bytes, spread: int = 60) -> list[int]:
    """Cut points before ``[DONE]``: both sides of every event boundary (where the
    answer changes) and an even spread of ``spread`` others."""
    done_at = body.rindex(b"data: [DONE]")
    ends = [i + 2 for i in range(len(body)) if body.startswith(b"\n\n", i)]
    chosen = {o for end in ends for o in (end - 1, end)}
    chosen |= {done_at * k // spread for k in range(spread)}
    return sorted(o for o in chosen if 0 <= o < done_at)


def same_answer(joined: ChatResult, uncut: ChatResult) -> None:
    assert [c.index for c in joined.choices] == [c.index for c in uncut.choices]
    for mine, theirs in zip(joined.choices, uncut.choices, strict=True):
        assert mine.content == theirs.content
        assert mine.reasoning == theirs.reasoning
        assert mine.finish_reason == theirs.finish_reason
        assert [(c.id, c.name, c.arguments) for c in mine.tool_calls] == [
            (c.id, c.name, c.arguments) for c in theirs.tool_calls
        ]


def delivered_once(run: Run) -> None:
    """Every character of the answer came in exactly one delta."""
    for choice in run.result.choices:
        text = [e.text for e in run.events if type(e) is TextDelta and e.index == choice.index]
        assert "".join(text) == choice.content
        thought = [
            e.text for e in run.events if type(e) is ReasoningDelta and e.index == choice.index
        ]
        assert "".join(thought) == choice.reasoning


# -- every cut offset ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "n"),
    [
        ("plain_text", 1),
        ("multibyte_split", 1),
        ("reasoning_text_signature", 1),
        ("tool_call", 1),
        ("n2_choices", 2),
    ],
)
def test_a_cut_at_any_offset_is_continued_into_the_uncut_answer(
    fixtures: FixtureServer, mode: str, name: str, n: int
) -> None:
    body = body_of(name)
    uncut = accumulate(parse_chat_stream(body))
    cuts = offsets(body)
    params = (("n", n),) if n > 1 else ()
    calls = [
        Call(
            {"X-Rawsse-Cassette": name, "X-Rawsse-Cut-After": str(o), "X-Rawsse-Once": once()},
            params=params,
        )
        for o in cuts
    ]
    for offset, run in zip(cuts, run_all(mode, fixtures.base_url, calls), strict=True):
        seams = [e for e in run.events if type(e) is Continued]
        assert len(seams) == run.metrics.continuations
        assert all(e.attempt == 1 for e in seams), offset  # one seam per choice at most
        assert len(seams) <= n
        delivered_once(run)
        if run.error is not None:
            # Cut after every choice finished, before usage and [DONE]: nothing to
            # continue; the error carries the whole answer.
            assert isinstance(run.error, IncompleteStreamError), (offset, run.error)
            assert run.error.partial == run.result
            assert all(c.finish_reason for c in run.result.choices)
            same_answer(run.result, uncut)
            continue
        same_answer(run.result, uncut)
        assert run.result.status is ChatStatus.COMPLETE, offset
        assert run.result.usage is not None
        calls_seen = [e for e in run.events if type(e) is ToolCallDelta]
        assert len(calls_seen) == len(
            [e for e in parse_chat_stream(body) if type(e) is ToolCallDelta]
        )
        if seams:
            assert len(run.metrics.parts) == 1 + len(seams)


def test_without_resume_a_cut_is_raised_as_before(fixtures: FixtureServer, mode: str) -> None:
    body = body_of("plain_text")
    cuts = offsets(body, spread=10)
    calls = [
        Call({"X-Rawsse-Cassette": "plain_text", "X-Rawsse-Cut-After": str(o)}, resume=None)
        for o in cuts
    ]
    for offset, run in zip(cuts, run_all(mode, fixtures.base_url, calls), strict=True):
        assert run.events == parse_chat_stream(body[:offset])
        assert not any(type(e) is Continued for e in run.events)
        assert isinstance(run.error, IncompleteStreamError)
        assert run.error.partial is not None
        assert run.metrics.continuations == 0
        assert run.metrics.parts == ()


# -- seams ---------------------------------------------------------------------------


def text_offsets(name: str, count: int) -> list[int]:
    """Cut points inside the answer's text (after the first content event)."""
    body = body_of(name)
    first = body.index(b'"content":"', body.index(b'"content":"') + 12)
    done_at = body.rindex(b"data: [DONE]")
    return [first + (done_at - first) * k // count for k in range(count)]


@pytest.mark.parametrize("seam", ["repeat:3", "repeat:8", "trim"])
def test_seam_quirks_over_http(fixtures: FixtureServer, mode: str, seam: str) -> None:
    uncut = accumulate(parse_chat_stream(body_of("plain_text")))
    cuts = text_offsets("plain_text", 12)
    calls = [
        Call(
            {
                "X-Rawsse-Cassette": "plain_text",
                "X-Rawsse-Cut-After": str(o),
                "X-Rawsse-Once": once(),
                "X-Rawsse-Seam": seam,
            }
        )
        for o in cuts
    ]
    for run in run_all(mode, fixtures.base_url, calls):
        delivered_once(run)
        if run.error is not None:
            assert all(c.finish_reason for c in run.result.choices)
        text = run.result.text
        if seam == "trim" and text != uncut.text:
            # Documented: a space dropped after a word cannot be detected.
            assert len(text) == len(uncut.text) - 1
            assert sorted(text + " ") == sorted(uncut.text)
        else:
            assert text == uncut.text


# -- triggers ------------------------------------------------------------------------


def event_boundary_after_text(name: str, chars: int) -> int:
    """The offset just after the event that brings the answer past ``chars`` characters."""
    body = body_of(name)
    seen = 0
    position = 0
    for block in body.split(b"\n\n"):
        position += len(block) + 2
        events = parse_chat_stream(block + b"\n\n")
        seen += sum(len(e.text) for e in events if type(e) is TextDelta)
        if seen >= chars:
            return position
    raise AssertionError("the answer is shorter")


def test_a_stall_with_keepalives_only_is_continued_by_the_stall_clock(
    fixtures: FixtureServer, mode: str
) -> None:
    at = event_boundary_after_text("plain_text", 20)
    call = Call(
        {
            "X-Rawsse-Cassette": "plain_text",
            "X-Rawsse-Stall": f"{at},5",
            "X-Rawsse-Keepalive": "0.05",
            "X-Rawsse-Once": once(),
        },
        timeout=Timeouts(stall=0.4, idle=3.0, first_token=3.0, total=10.0),
    )
    (run,) = run_all(mode, fixtures.base_url, [call])
    assert run.error is None
    assert run.result.text == accumulate(parse_chat_stream(body_of("plain_text"))).text
    (seam,) = [e for e in run.events if type(e) is Continued]
    assert seam.reason == "timeout"
    assert "only keep-alives" in seam.detail
    assert run.seconds < 3.0  # the stall clock, not the 5 s stall nor the idle clock
    before = run.events.index(seam)
    assert any(e.__class__.__name__ == "KeepAlive" for e in run.events[:before])


@pytest.mark.parametrize(
    ("code", "resumed"), [(503, True), (502, True), (529, True), (400, False), (429, False)]
)
def test_in_band_errors(fixtures: FixtureServer, mode: str, code: int, resumed: bool) -> None:
    at = event_boundary_after_text("plain_text", 20)
    call = Call(
        {
            "X-Rawsse-Cassette": "plain_text",
            "X-Rawsse-Error-At": f"{at},{code}",
            "X-Rawsse-Once": once(),
        }
    )
    (run,) = run_all(mode, fixtures.base_url, [call])
    uncut = accumulate(parse_chat_stream(body_of("plain_text")))
    seams = [e for e in run.events if type(e) is Continued]
    if resumed:
        assert run.error is None
        assert [e.reason for e in seams] == ["error"]
        assert str(code) in seams[0].detail
        assert run.result.text == uncut.text
        assert run.result.status is ChatStatus.COMPLETE
    else:
        assert seams == []
        assert isinstance(run.error, StreamError)
        assert run.error.code == code
        assert run.error.partial is not None
        assert uncut.text.startswith(run.error.partial.text)
        assert len(run.error.partial.text) >= 20


def test_length_is_continued_only_when_opted_in(fixtures: FixtureServer, mode: str) -> None:
    uncut = accumulate(parse_chat_stream(body_of("plain_text")))
    deltas = [e for e in parse_chat_stream(body_of("plain_text")) if type(e) is TextDelta]
    headers = {"X-Rawsse-Cassette": "plain_text", "X-Rawsse-Length-After": "6"}
    needed = -(-len(deltas) // 6) - 1
    off, on = run_all(
        mode,
        fixtures.base_url,
        [Call(headers), Call(headers, resume=Resume(length=True, max_continuations=needed))],
    )
    assert off.error is None
    assert off.result.text == "".join(d.text for d in deltas[:6])
    assert off.result.choices[0].finish_reason == "length"
    assert not any(type(e) is Continued for e in off.events)
    assert [e for e in off.events if type(e) is Finish] == [Finish(0, "length", "length")]

    assert on.error is None
    assert on.result.text == uncut.text
    assert on.result.choices[0].finish_reason == "stop"
    seams = [e for e in on.events if type(e) is Continued]
    assert [(e.reason, e.attempt) for e in seams] == [("length", i + 1) for i in range(needed)]
    assert not any(type(e) is Finish and e.reason == "length" for e in on.events)
    delivered_once(on)
    # usage and cost summed over every request
    usage = on.result.usage
    assert usage is not None
    one = uncut.usage
    assert one is not None
    assert usage.cost == pytest.approx(one.cost * (needed + 1))
    assert on.metrics.continuations == needed
    assert len(on.metrics.parts) == needed + 1
    assert all(p.ttft is not None for p in on.metrics.parts)
    assert on.metrics.attempts == needed + 1


def test_continuations_are_capped(fixtures: FixtureServer, mode: str) -> None:
    # Every request is cut after its first events: each continuation adds a little.
    at = event_boundary_after_text("plain_text", 10)
    headers = {"X-Rawsse-Cassette": "plain_text", "X-Rawsse-Cut-After": str(at)}
    (run,) = run_all(mode, fixtures.base_url, [Call(headers, resume=Resume(max_continuations=2))])
    assert isinstance(run.error, IncompleteStreamError)
    assert [(e.reason, e.attempt) for e in run.events if type(e) is Continued] == [
        ("cut", 1),
        ("cut", 2),
    ]
    assert run.error.partial is not None
    assert run.error.partial.status is ChatStatus.TRUNCATED
    uncut = accumulate(parse_chat_stream(body_of("plain_text")))
    assert uncut.text.startswith(run.error.partial.text)
    delivered_once(run)
    assert run.metrics.attempts == 3


def test_total_bounds_the_continuations(fixtures: FixtureServer, mode: str) -> None:
    # The continuation is slow (recorded timing): total fires during it.
    at = event_boundary_after_text("plain_text", 10)
    headers = {
        "X-Rawsse-Cassette": "plain_text",
        "X-Rawsse-Cut-After": str(at),
        "X-Rawsse-Speed": "0.05",
    }
    call = Call(headers, timeout=Timeouts(total=0.8, first_token=5, idle=5, stall=5))
    (run,) = run_all(mode, fixtures.base_url, [call])
    assert isinstance(run.error, TotalTimeout)
    assert run.seconds < 0.8 + 0.5
    assert run.error.partial is not None
    assert run.error.partial.status is ChatStatus.TIMED_OUT


@pytest.mark.parametrize(("code", "resumed"), [(503, True), (400, False)])
def test_in_band_errors_yielded_as_events(
    fixtures: FixtureServer, mode: str, code: int, resumed: bool
) -> None:
    at = event_boundary_after_text("plain_text", 20)
    headers = {
        "X-Rawsse-Cassette": "plain_text",
        "X-Rawsse-Error-At": f"{at},{code}",
        "X-Rawsse-Once": once(),
    }
    (run,) = run_all(mode, fixtures.base_url, [Call(headers, in_band_error="yield")])
    assert run.error is None
    errors = [e for e in run.events if type(e) is InBandError]
    seams = [e for e in run.events if type(e) is Continued]
    if resumed:
        assert errors == []
        assert [e.reason for e in seams] == ["error"]
        assert run.result.text == accumulate(parse_chat_stream(body_of("plain_text"))).text
        assert run.result.status is ChatStatus.COMPLETE
    else:
        assert [e.code for e in errors] == [code]
        assert seams == []
        assert run.result.status is ChatStatus.ERROR
        assert run.result.choices[0].finish_reason == "error"


def test_restart_mode_sends_the_request_again_and_drops_the_repeat(
    fixtures: FixtureServer, mode: str
) -> None:
    uncut = accumulate(parse_chat_stream(body_of("multibyte_split")))
    cuts = offsets(body_of("multibyte_split"), spread=8)[::3]
    calls = [
        Call(
            {
                "X-Rawsse-Cassette": "multibyte_split",
                "X-Rawsse-Cut-After": str(o),
                "X-Rawsse-Once": once(),
            },
            resume=Resume(mode="restart"),
        )
        for o in cuts
    ]
    for run in run_all(mode, fixtures.base_url, calls):
        delivered_once(run)
        if run.error is None:
            same_answer(run.result, uncut)
        else:
            assert all(c.finish_reason for c in run.result.choices)
