"""RelayEncoder: exact bytes for every event, heartbeat and coalescing deadline, and ending."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawsse import (
    APIConnectionError,
    ChatStatus,
    ConnectTimeout,
    Done,
    Extra,
    Finish,
    FirstTokenTimeout,
    IdleTimeout,
    InBandError,
    IncompleteStreamError,
    KeepAlive,
    MalformedChunk,
    RateLimitError,
    ReasoningDelta,
    RefusalDelta,
    RoleDelta,
    ServerSentEvent,
    SSEDecoder,
    StallTimeout,
    StreamError,
    StreamStart,
    TextDelta,
    ToolCallDelta,
    TotalTimeout,
    UnexpectedContentType,
    Usage,
    accumulate,
)
from rawsse.relay import EVENT_NAMES, RelayEncoder

START = StreamStart("gen-1", "m/x", None, None)
USAGE = Usage(3, 2, 5, None, None, 0.25, {"prompt_tokens": 3, "completion_tokens": 2,
              "total_tokens": 5, "cost": 0.25})  # fmt: skip
USAGE_DATA = (
    '{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,'
    '"reasoning_tokens":null,"cached_tokens":null,"cost":0.25}'
)
START_BYTES = b'id: 1\nevent: start\ndata: {"stream_id":null,"model":"m/x","id":"gen-1"}\n\n'


def text(n: int, body: str, choice: int = 0, name: str = "text") -> bytes:
    data = json.dumps({"choice": choice, "text": body}, ensure_ascii=False, separators=(",", ":"))
    return f"id: {n}\nevent: {name}\ndata: {data}\n\n".encode()


def parse(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = [e for e in SSEDecoder().feed(data) if isinstance(e, ServerSentEvent)]
    return [(e.event, json.loads(e.data)) for e in events]


def complete(*events: Any) -> Any:
    return accumulate([*events, Done()])


# -- the whole stream, exactly --------------------------------------------------------


def test_a_complete_stream_is_exact_bytes() -> None:
    enc = RelayEncoder(10.0)
    out = enc.open(10.0)
    assert out == b": rawsse\n\n"
    events = [START, RoleDelta(0, "assistant"), TextDelta(0, 'Hé\n"x'), TextDelta(0, "y")]
    out = enc.feed_many(events, 10.5)
    assert out == START_BYTES + text(2, 'Hé\n"x') + text(3, "y")
    assert enc.feed(Finish(0, "stop", None), 10.6) == b""
    assert enc.feed(USAGE, 10.7) == b"id: 4\nevent: usage\ndata: " + USAGE_DATA.encode() + b"\n\n"
    assert enc.feed(Done(), 10.7) == b""
    result = complete(
        START, TextDelta(0, 'Hé\n"x'), TextDelta(0, "y"), Finish(0, "stop", None), USAGE
    )
    out = enc.close(result, 10.8)
    assert out == (
        b'id: 5\nevent: done\ndata: {"status":"complete","finish_reason":"stop",'
        b'"finish_reasons":{"0":"stop"},"usage":' + USAGE_DATA.encode() + b',"cost":0.25,'
        b'"ttft":0.5}\n\n'
    )
    assert enc.closed
    assert enc.last_id == 5


def test_feed_opens_the_stream_when_open_was_not_called() -> None:
    enc = RelayEncoder(0.0)
    assert enc.feed(START, 0.0) == b": rawsse\n\n" + START_BYTES
    assert enc.open(0.0) == b""


def test_start_is_sent_before_the_first_event_even_without_stream_start() -> None:
    enc = RelayEncoder(0.0, stream_id="s-1")
    out = enc.feed(TextDelta(0, "a"), 0.1)
    assert out == (
        b": rawsse\n\n"
        b'id: 1\nevent: start\ndata: {"stream_id":"s-1","model":null,"id":null}\n\n' + text(2, "a")
    )


def test_retry_and_next_id_go_into_the_first_data_event() -> None:
    enc = RelayEncoder(0.0, retry=2000, next_id=7)
    out = enc.feed_many([START, TextDelta(0, "a")], 0.0)
    assert out == (
        b": rawsse\n\nretry: 2000\n"
        b'id: 7\nevent: start\ndata: {"stream_id":null,"model":"m/x","id":"gen-1"}\n\n'
        + text(8, "a")
    )


def test_every_kind_of_event() -> None:
    enc = RelayEncoder(0.0)
    enc.open(0.0)
    out = enc.feed_many(
        [
            START,
            ReasoningDelta(0, "think"),
            ToolCallDelta(0, 0, "call_1", "get", '{"a"', "function"),
            ToolCallDelta(0, 0, None, None, ":1}"),
            TextDelta(1, "second choice"),
        ],
        0.0,
    )
    assert parse(out) == [
        ("start", {"stream_id": None, "model": "m/x", "id": "gen-1"}),
        ("reasoning", {"choice": 0, "text": "think"}),
        ("tool_call", {"choice": 0, "index": 0, "id": "call_1", "type": "function",
                       "name": "get", "arguments": '{"a"'}),
        ("tool_call", {"choice": 0, "index": 0, "id": None, "type": None, "name": None,
                       "arguments": ":1}"}),
        ("text", {"choice": 1, "text": "second choice"}),
    ]  # fmt: skip


def test_tool_fragments_without_index_continue_the_last_call_or_start_the_next() -> None:
    enc = RelayEncoder(0.0)
    out = enc.feed_many(
        [
            ToolCallDelta(0, None, "a", "f", "{"),
            ToolCallDelta(0, None, None, None, "}"),
            ToolCallDelta(0, None, "b", "g", "{}"),
        ],
        0.0,
    )
    assert [(d["index"], d["id"]) for _, d in parse(out)[1:]] == [(0, "a"), (0, None), (1, "b")]


# -- extras: nothing upstream sent is dropped silently ----------------------------------


def test_unmodelled_content_travels_in_the_next_events_extras() -> None:
    enc = RelayEncoder(0.0)
    enc.open(0.0)
    out = enc.feed_many(
        [
            StreamStart("gen-1", "m/x", "Prov", 1700),
            Extra(None, {"system_fingerprint": "fp"}, "chunk"),
            TextDelta(0, "a"),
            Extra(0, {"logprobs": {"content": []}}, "choice"),
            RoleDelta(0, "tool"),
            RefusalDelta(0, "no"),
            ReasoningDelta(0, "", ({"type": "reasoning.encrypted", "data": "xx"},)),
            Finish(0, "stop", "STOP"),
            Usage(1, 1, 2, None, None, None, {"prompt_tokens": 1, "is_byok": False}),
        ],
        0.0,
    )
    assert parse(out) == [
        ("start", {"stream_id": None, "model": "m/x", "id": "gen-1",
                   "extras": {"provider": ["Prov"], "created": [1700]}}),
        ("text", {"choice": 0, "text": "a", "extras": {"system_fingerprint": ["fp"]}}),
        ("text", {"choice": 0, "text": "", "extras": {
            "choices": {"0": {"logprobs": [{"content": []}], "role": ["tool"]}},
            "refusal": ["no"]}}),
        ("reasoning", {"choice": 0, "text": "", "extras": {"choices": {"0": {
            "reasoning_details": [[{"type": "reasoning.encrypted", "data": "xx"}]]}}}}),
        ("usage", {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2,
                   "reasoning_tokens": None, "cached_tokens": None, "cost": None,
                   "extras": {"choices": {"0": {"native_finish_reason": ["STOP"]}},
                              "is_byok": [False]}}),
    ]  # fmt: skip


def test_leftover_extras_travel_in_the_terminal_event() -> None:
    enc = RelayEncoder(0.0)
    enc.feed_many([START, TextDelta(0, "a"), Extra(None, {"service_tier": "x"}, "chunk")], 0.0)
    (name, data), = parse(enc.close(complete(START, TextDelta(0, "a"))))  # fmt: skip
    assert name == "done"
    assert data["extras"] == {"service_tier": ["x"]}


def test_keepalives_and_done_send_nothing() -> None:
    enc = RelayEncoder(0.0)
    enc.open(0.0)
    assert enc.feed_many([KeepAlive(" OPENROUTER PROCESSING"), Done()], 1.0) == b""


# -- heartbeats ------------------------------------------------------------------------


def test_heartbeat_after_heartbeat_seconds_of_downstream_silence() -> None:
    enc = RelayEncoder(100.0, heartbeat=15.0)
    assert enc.open(100.0) == b": rawsse\n\n"
    assert enc.deadline() == 115.0
    assert enc.poll(114.999) == b""
    assert enc.poll(115.0) == b": hb\n\n"
    assert enc.deadline() == 130.0
    enc.feed(TextDelta(0, "a"), 120.0)  # a write moves the next heartbeat
    assert enc.deadline() == 135.0
    assert enc.poll(134.0) == b""
    assert enc.poll(135.5) == b": hb\n\n"
    assert enc.deadline() == 150.5


def test_upstream_keepalives_do_not_count_as_downstream_writes() -> None:
    enc = RelayEncoder(0.0, heartbeat=1.0)
    enc.open(0.0)
    assert enc.feed(KeepAlive("x"), 0.9) == b""
    assert enc.deadline() == 1.0
    assert enc.poll(1.0) == b": hb\n\n"


def test_no_heartbeat_when_off() -> None:
    enc = RelayEncoder(0.0, heartbeat=None)
    enc.open(0.0)
    assert enc.deadline() is None
    assert enc.poll(1e9) == b""


@pytest.mark.parametrize(("heartbeat", "coalesce"), [(0.0, 0.0), (-1.0, 0.0), (1.0, -0.1)])
def test_bad_settings_are_refused(heartbeat: float, coalesce: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        RelayEncoder(0.0, heartbeat=heartbeat, coalesce=coalesce)


# -- coalescing ------------------------------------------------------------------------


def test_coalescing_gathers_one_window_per_choice_and_kind() -> None:
    enc = RelayEncoder(0.0, coalesce=0.25)
    enc.feed(START, 0.0)
    assert enc.feed(TextDelta(0, "a"), 1.0) == b""
    assert enc.deadline() == 1.25
    assert enc.feed(ReasoningDelta(0, "r1"), 1.1) == b""
    assert enc.feed(TextDelta(1, "x"), 1.1) == b""
    assert enc.feed(TextDelta(0, "b"), 1.2) == b""
    assert enc.feed(ReasoningDelta(0, "r2"), 1.2) == b""
    assert enc.poll(1.249) == b""
    assert enc.poll(1.25) == text(2, "ab") + text(3, "r1r2", name="reasoning") + text(4, "x", 1)
    assert enc.deadline() == 1.25 + 15.0  # the heartbeat, counted from the flush
    # The next window opens with the next delta; a feed after its end flushes it.
    assert enc.feed(TextDelta(0, "c"), 2.0) == b""
    assert enc.feed(TextDelta(0, "d"), 2.3) == text(5, "cd")


def test_coalescing_flushes_before_every_non_text_event() -> None:
    enc = RelayEncoder(0.0, coalesce=10.0)
    enc.feed(START, 0.0)
    assert enc.feed(TextDelta(0, "a"), 0.0) == b""
    out = enc.feed(ToolCallDelta(0, 0, "c", "f", "{}"), 0.1)
    assert [n for n, _ in parse(out)] == ["text", "tool_call"]
    enc.feed(TextDelta(0, "b"), 0.2)
    assert parse(enc.feed(Finish(0, "stop", None), 0.3)) == [("text", {"choice": 0, "text": "b"})]
    enc.feed(TextDelta(0, "c"), 0.4)
    assert [n for n, _ in parse(enc.feed(USAGE, 0.5))] == ["text", "usage"]


@pytest.mark.parametrize("ending", ["close", "fail"])
def test_coalescing_flushes_at_the_end(ending: str) -> None:
    enc = RelayEncoder(0.0, coalesce=10.0)
    enc.feed_many([START, TextDelta(0, "a"), TextDelta(0, "b")], 0.0)
    result = complete(START, TextDelta(0, "a"), TextDelta(0, "b"), Finish(0, "stop", None))
    if ending == "close":
        out = enc.close(result, 0.1)
    else:
        out = enc.fail(IncompleteStreamError("cut", partial=result), 0.1)
    names = parse(out)
    assert names[0] == ("text", {"choice": 0, "text": "ab"})
    assert names[1][0] == ("done" if ending == "close" else "error")


def test_heartbeat_waits_for_a_pending_flush_not_the_other_way() -> None:
    enc = RelayEncoder(0.0, heartbeat=1.0, coalesce=5.0)
    enc.open(0.0)
    enc.feed(TextDelta(0, "a"), 0.5)
    assert enc.deadline() == 1.0
    assert enc.poll(1.0) == b": hb\n\n"
    assert enc.deadline() == 2.0
    assert enc.poll(5.5)[-len(text(2, "a")) :] == text(2, "a")


# -- exactly one terminal event for every ending --------------------------------------

PARTIAL = accumulate([START, TextDelta(0, "héllo"), TextDelta(1, "other")])


def _one_terminal(out: bytes) -> tuple[str, dict[str, Any]]:
    events = parse(out)
    assert [n for n, _ in events].count("done") + [n for n, _ in events].count("error") == 1
    return events[-1]


@pytest.mark.parametrize(
    ("error", "status", "code", "http_status"),
    [
        (StreamError("x", code=502, partial=PARTIAL), "error", 502, None),
        (IncompleteStreamError("x", partial=PARTIAL), "truncated", None, None),
        (ConnectTimeout("x", partial=PARTIAL), "timed_out", None, None),
        (FirstTokenTimeout("x", partial=PARTIAL), "timed_out", None, None),
        (IdleTimeout("x", partial=PARTIAL), "timed_out", None, None),
        (StallTimeout("x", partial=PARTIAL), "timed_out", None, None),
        (TotalTimeout("x", partial=PARTIAL), "timed_out", None, None),
        (MalformedChunk("x", payload="{", partial=PARTIAL), "error", None, None),
        (RateLimitError("x", status=429, code=429), "error", 429, 429),
        (APIConnectionError("x"), "error", None, None),
        (UnexpectedContentType("x", status=200, content_type="text/html"), "error", None, 200),
        (ValueError("x"), "error", None, None),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_every_error_ends_with_one_error_event(
    error: BaseException, status: str, code: object, http_status: object
) -> None:
    enc = RelayEncoder(0.0)
    enc.feed_many([START, TextDelta(0, "héllo")], 0.0)
    name, data = _one_terminal(enc.fail(error, 1.0))
    partial = getattr(error, "partial", None)
    assert (name, data) == (
        "error",
        {
            "status": status,
            "message": "x",
            "code": code,
            "http_status": http_status,
            "partial_text_length": 5,
            "text": "héllo" if partial is not None else "",
        },
    )
    assert enc.closed
    assert enc.fail(error, 2.0) == b""
    assert enc.close(PARTIAL, 2.0) == b""
    assert enc.poll(100.0) == b""
    assert enc.deadline() is None
    with pytest.raises(RuntimeError, match="closed"):
        enc.feed(TextDelta(0, "late"), 3.0)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_cancellation_ends_with_a_cancelled_error_event(backend: str) -> None:
    import anyio

    async def cancelled() -> BaseException:
        caught: list[BaseException] = []
        with anyio.CancelScope() as scope:
            scope.cancel()
            try:
                await anyio.sleep(1)
            except anyio.get_cancelled_exc_class() as exc:
                caught.append(exc)
                raise
        return caught[0]

    enc = RelayEncoder(0.0)
    enc.feed_many([START, TextDelta(0, "ab")], 0.0)
    _, data = _one_terminal(enc.fail(anyio.run(cancelled, backend=backend), 0.0))
    assert (data["status"], data["partial_text_length"]) == ("cancelled", 2)


def test_cancel_ends_with_one_cancelled_error_event() -> None:
    enc = RelayEncoder(0.0, coalesce=1.0)
    enc.feed_many([START, TextDelta(0, "ab")], 0.0)
    events = parse(enc.cancel(0.5))
    assert events == [
        ("text", {"choice": 0, "text": "ab"}),
        ("error", {"status": "cancelled", "message": "the stream was cancelled", "code": None,
                   "http_status": None, "partial_text_length": 2, "text": ""}),
    ]  # fmt: skip
    assert enc.cancel(1.0) == b""


def test_a_truncated_result_ends_with_done_truncated() -> None:
    enc = RelayEncoder(0.0)
    result = accumulate([START, TextDelta(0, "a")])
    assert result.status is ChatStatus.TRUNCATED
    name, data = _one_terminal(enc.feed(TextDelta(0, "a"), 0.0) + enc.close(result))
    assert (name, data["status"], data["finish_reason"]) == ("done", "truncated", None)


def test_an_in_band_error_result_ends_with_an_error_event() -> None:
    error = InBandError(None, 503, "provider down", {"provider": "p"}, {})
    enc = RelayEncoder(0.0)
    out = enc.feed_many([START, TextDelta(0, "ab"), error], 0.0)
    result = accumulate([START, TextDelta(0, "ab"), error])
    name, data = _one_terminal(out + enc.close(result))
    assert (name, data) == (
        "error",
        {
            "status": "error",
            "message": "provider down",
            "code": 503,
            "http_status": None,
            "partial_text_length": 2,
            "text": "ab",
            "extras": {"metadata": [{"provider": "p"}]},
        },
    )


def test_done_reports_every_choices_finish_reason() -> None:
    enc = RelayEncoder(0.0)
    result = complete(TextDelta(0, "a"), Finish(0, "length", None), Finish(1, "stop", None))
    _, data = _one_terminal(enc.close(result, 1.0))
    assert (data["finish_reason"], data["finish_reasons"]) == (
        "length",
        {"0": "length", "1": "stop"},
    )
    assert data["ttft"] is None


# -- any sequence: the browser's view adds up to the stream ----------------------------

deltas = st.lists(
    st.tuples(
        st.sampled_from(["text", "reasoning", "tool", "usage", "keepalive"]),
        st.integers(0, 1),
        st.text(st.sampled_from('ab\n\r:é€😀\u2028\x00"'), max_size=4),
        st.floats(0, 0.2),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(deltas, st.sampled_from([0.0, 0.05, 0.3]), st.booleans())
def test_any_sequence_gives_valid_events_that_add_up(
    steps: list[tuple[str, int, str, float]], coalesce: float, polls: bool
) -> None:
    enc = RelayEncoder(0.0, heartbeat=0.1, coalesce=coalesce)
    out = [enc.open(0.0)]
    now = 0.0
    sent: list[Any] = []
    for kind, choice, body, gap in steps:
        now += gap
        if polls:
            out.append(enc.poll(now))
        if kind == "text":
            event: Any = TextDelta(choice, body)
        elif kind == "reasoning":
            event = ReasoningDelta(choice, body)
        elif kind == "tool":
            event = ToolCallDelta(choice, 0, None, None, body)
        elif kind == "usage":
            event = USAGE
        else:
            event = KeepAlive(body)
        sent.append(event)
        out.append(enc.feed(event, now))
    out.append(enc.close(accumulate(sent), now + 1))
    data = b"".join(out)
    events = [e for e in SSEDecoder().feed(data) if isinstance(e, ServerSentEvent)]
    assert [e.id for e in events] == [str(i) for i in range(1, len(events) + 1)]
    assert all(e.event in EVENT_NAMES for e in events)
    assert events[-1].event in ("done", "error")
    assert [e.event for e in events[:-1]].count("done") == 0
    assert all(e.event != "error" for e in events[:-1])
    decoded = [(e.event, json.loads(e.data)) for e in events]
    for choice in (0, 1):
        for name, delta_type in (("text", TextDelta), ("reasoning", ReasoningDelta)):
            want = "".join(e.text for e in sent if type(e) is delta_type and e.index == choice)
            got = "".join(d["text"] for n, d in decoded if n == name and d["choice"] == choice)
            assert got == want
