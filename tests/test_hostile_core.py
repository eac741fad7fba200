"""Hostile payloads through the sans-I/O core: only rawsse's own errors, numbers in range."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rawsse
from rawsse import (
    ChatDecoder,
    MalformedChunk,
    RateLimitError,
    RawSSEError,
    SSEProtocolError,
    accumulate,
    parse_chat_stream,
)
from rawsse._cassette import body_json
from rawsse._chat_events import ReasoningDelta
from rawsse._http_errors import status_error
from rawsse._json import JSONLimitError, bounded_number, loads_bounded
from rawsse._metrics import tokens_per_second

from .server import DONE, Script, Send, ServerThread, chunk, drive, running_server

DEEP = "[" * 50_000 + "]" * 50_000


def sse(*payloads: object) -> bytes:
    return b"".join(
        b"data: " + (p if isinstance(p, str) else json.dumps(p)).encode() + b"\n\n"
        for p in payloads
    )


# -- the JSON helper ---------------------------------------------------------------


def test_loads_bounded_parses_ordinary_json() -> None:
    assert loads_bounded('{"a": [1, {"b": "[[[["}]}') == {"a": [1, {"b": "[[[["}]}


@pytest.mark.parametrize(
    "text",
    [DEEP, "[" * 65 + "]" * 65, "NaN", "[Infinity]", "-Infinity", '{"a": [1, 2'],
)
def test_loads_bounded_raises_only_value_error(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (any ValueError is the promise)
        loads_bounded(text)


def test_loads_bounded_names_the_depth() -> None:
    with pytest.raises(JSONLimitError, match="deeper than 3 levels"):
        loads_bounded("[[[[1]]]]", max_depth=3)
    assert loads_bounded("[[[1]]]", max_depth=3) == [[[1]]]


def test_loads_bounded_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"s": "[" * 1000 + "{" * 1000, "t": '\\"[[[['})
    assert loads_bounded(text, max_depth=2)["s"].startswith("[[[")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.5, 1.5),
        (10**400, 60.0),
        (float("inf"), 60.0),
        (-(10**400), 0.0),
        (float("-inf"), 0.0),
        (float("nan"), None),
        (True, None),
        ("5", None),
        (None, None),
    ],
)
def test_bounded_number(value: object, expected: float | None) -> None:
    assert bounded_number(value, low=0.0, high=60.0) == expected


# -- foreign exceptions in the decoder and accumulator ----------------------------


def test_reasoning_details_with_an_unhashable_type_accumulates() -> None:
    body = sse(
        {"choices": [{"index": 0, "delta": {"reasoning_details": [{"index": 0, "type": [1]}]}}]},
        {"choices": [{"index": 0, "delta": {"reasoning_details": [{"index": 0, "type": [1]}]}}]},
    )
    events = parse_chat_stream(body)
    assert events[0] == ReasoningDelta(0, "", ({"index": 0, "type": [1]},))
    result = accumulate(events)
    assert result.choices[0].reasoning_details == [
        {"index": 0, "type": [1]},
        {"index": 0, "type": [1]},
    ]


def test_reasoning_details_with_a_hashable_odd_type_still_merges_by_index() -> None:
    body = sse(
        {"choices": [{"delta": {"reasoning_details": [{"index": 0, "type": 7, "text": "a"}]}}]},
        {"choices": [{"delta": {"reasoning_details": [{"index": 0, "type": 7, "text": "b"}]}}]},
    )
    result = accumulate(parse_chat_stream(body))
    assert result.choices[0].reasoning_details == [{"index": 0, "type": 7, "text": "ab"}]


def test_an_error_message_nested_deep_is_not_rendered() -> None:
    # 900 levels parse under the default recursion limit, but rendering them with
    # json.dumps a few frames deeper may not: such a message is not rendered at all.
    inner = "[" * 900 + "]" * 900
    payload = '{"error": {"code": 500, "message": ' + inner + "}}"
    (event,) = ChatDecoder().feed(b"data: " + payload.encode() + b"\n\n")
    assert isinstance(event, rawsse.InBandError)
    assert event.code == 500
    assert event.message == "(an error message nested deeper than 64 levels)"


def test_an_error_message_that_is_an_object_is_rendered_as_json() -> None:
    payload = {"error": {"code": 500, "message": {"why": ["a", 1]}}}
    (event,) = parse_chat_stream(sse(payload))
    assert isinstance(event, rawsse.InBandError)
    assert event.message == '{"why": ["a", 1]}'


def test_an_error_payload_50000_deep_is_a_malformed_chunk() -> None:
    with pytest.raises(MalformedChunk) as info:
        parse_chat_stream(b'data: {"error": {"message": ' + DEEP.encode() + b"}}\n\n")
    assert info.value.partial is not None


def test_a_token_count_beyond_two_to_the_53_is_refused() -> None:
    usage = {"prompt_tokens": 1, "completion_tokens": 10**400, "total_tokens": 1}
    with pytest.raises(MalformedChunk, match=r"completion_tokens .* out of range") as info:
        parse_chat_stream(sse({"choices": [{"delta": {"content": "hi"}}]}, {"usage": usage}))
    assert info.value.partial is not None
    assert info.value.partial.text == "hi"


def test_a_token_count_of_two_to_the_53_is_kept() -> None:
    usage = {"completion_tokens": 2**53}
    (event,) = parse_chat_stream(sse({"usage": usage}))
    assert isinstance(event, rawsse.Usage)
    assert event.completion_tokens == 2**53


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with running_server() as s:
        yield s


def test_metrics_after_a_huge_token_count_are_an_own_error(server: ServerThread) -> None:
    usage = {"prompt_tokens": 1, "completion_tokens": 10**400, "total_tokens": 1}
    body = (
        chunk(content="a")
        + b"data: "
        + json.dumps({"choices": [], "usage": usage}).encode()
        + b"\n\n"
        + DONE
    )
    server.expect(Script(steps=[Send(body)]))
    outcome = drive("sync", server.url)
    assert isinstance(outcome.error, MalformedChunk)
    assert outcome.metrics is not None  # no OverflowError
    assert outcome.metrics.completion_tokens is None


# -- HTTP error bodies ---------------------------------------------------------------


def test_status_error_with_a_body_nested_50000_deep() -> None:
    err = status_error(500, {}, DEEP.encode())
    assert isinstance(err, rawsse.InternalServerError)
    assert err.message.startswith("[[[")


@pytest.mark.parametrize("hint", ["1e400", str(10**400), "-1", "NaN", "Infinity"])
def test_status_error_with_an_absurd_retry_after_hint(hint: str) -> None:
    body = '{"error": {"message": "slow down", "availability": {"retry_after": ' + hint + "}}}"
    err = status_error(429, {}, body.encode())
    assert isinstance(err, RateLimitError)
    if hint in ("NaN", "Infinity"):  # not JSON: the body is shown as text
        assert err.message == body
        assert err.retry_after is None
    elif hint == "-1":
        assert err.retry_after is None
    else:
        assert err.message == "slow down"
        assert err.retry_after == 86400.0


def test_status_error_keeps_an_ordinary_retry_after_hint() -> None:
    body = b'{"error": {"message": "m", "availability": {"retry_after": 2.5}}}'
    err = status_error(429, {}, body)
    assert isinstance(err, RateLimitError)
    assert err.retry_after == 2.5


# -- properties ------------------------------------------------------------------------

_fragments = st.sampled_from(
    [
        b"data: ",
        b"\n\n",
        b"\n",
        b'{"choices": [{"index": 0, "delta": {',
        b'"reasoning_details": [{"index": 0, "type": ',
        b'"content": ',
        b'"\\ud83d"',
        b'"\\ude00"',
        b"[1]",
        b"{}",
        b"}}]}",
        b'"usage": {"completion_tokens": 1' + b"0" * 400 + b"}",
        b'"error": {"message": ' + b"[" * 2000,
        b"]" * 2000 + b"}",
        b"[DONE]",
        b"1e400",
        b"NaN",
        b", ",
        b"\xff",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_fragments, st.binary(max_size=8)), max_size=24))
def test_any_bytes_through_parse_and_accumulate_raise_only_rawsse_errors(
    parts: list[bytes],
) -> None:
    failure: RawSSEError | None = None
    try:
        events = parse_chat_stream(parts)
    except RawSSEError as exc:
        failure = exc
        events = exc.events if isinstance(exc, (MalformedChunk, SSEProtocolError)) else []
    if failure is not None:
        assert isinstance(failure, (MalformedChunk, SSEProtocolError))
        assert failure.partial == accumulate(events)
    result = accumulate(events)
    result.text.encode("utf-8")  # never a lone surrogate


@pytest.mark.parametrize("odd", [[1], {"a": 1}, 7, None, "reasoning.text", True])
def test_reasoning_details_type_of_any_shape(odd: object) -> None:
    entry = {"index": 0, "type": odd, "text": "t"}
    body = sse(*[{"choices": [{"delta": {"reasoning_details": [entry]}}]}] * 2)
    result = accumulate(parse_chat_stream(body))
    assert result.choices[0].reasoning in ("tt", "")


# -- resuming after malformed payloads -----------------------------------------------

BAD = b'data: {"choices": 5}\n\n'


def good(text: str) -> bytes:
    return sse({"choices": [{"index": 0, "delta": {"content": text}}]})


def test_resuming_after_many_malformed_payloads_returns_every_good_event_in_order() -> None:
    decoder = ChatDecoder()
    data = b"".join(BAD + good(str(i)) for i in range(500))
    texts: list[str] = []
    failures = 0
    while True:
        try:
            events = decoder.feed(data)
        except MalformedChunk as exc:
            failures += 1
            texts += [e.text for e in exc.events if isinstance(e, rawsse.TextDelta)]
            data = b""
            continue
        texts += [e.text for e in events if isinstance(e, rawsse.TextDelta)]
        break
    assert failures == 500
    assert texts == [str(i) for i in range(500)]


def test_new_bytes_fed_while_items_are_pending_come_after_them() -> None:
    decoder = ChatDecoder()
    with pytest.raises(MalformedChunk) as first:
        decoder.feed(good("a") + BAD + good("b") + BAD + good("c"))
    assert first.value.events == [rawsse.TextDelta(0, "a")]
    with pytest.raises(MalformedChunk) as second:
        decoder.feed(good("d"))
    assert second.value.events == [rawsse.TextDelta(0, "b")]
    assert decoder.feed(b"") == [rawsse.TextDelta(0, "c"), rawsse.TextDelta(0, "d")]
    assert decoder.feed(b"") == []


def test_items_pending_after_done_are_counted_as_ignored() -> None:
    decoder = ChatDecoder()
    with pytest.raises(MalformedChunk):
        decoder.feed(BAD + b"data: [DONE]\n\n" + good("x") + b": ka\n\n")
    assert decoder.feed(good("y")) == [rawsse.Done()]
    assert decoder.ignored_after_done == 3


# -- an SSE bound broken: the events before it travel with the error -----------------


def test_a_long_line_after_whole_events_in_the_same_feed_keeps_them() -> None:
    decoder = ChatDecoder(max_line_bytes=100)
    with pytest.raises(rawsse.SSEProtocolError, match="line of 206 bytes") as info:
        decoder.feed(good("a") + good("b") + b"data: " + b"x" * 200 + b"\n\n" + good("c"))
    assert info.value.events == [rawsse.TextDelta(0, "a"), rawsse.TextDelta(0, "b")]
    with pytest.raises(rawsse.SSEProtocolError, match="failed earlier"):
        decoder.feed(good("d"))


def test_an_unterminated_long_line_after_whole_events_keeps_them() -> None:
    decoder = ChatDecoder(max_line_bytes=100)
    with pytest.raises(rawsse.SSEProtocolError, match="longer than max_line_bytes") as info:
        decoder.feed(good("a") + b"data: " + b"x" * 200)
    assert info.value.events == [rawsse.TextDelta(0, "a")]


def test_an_event_too_large_after_whole_events_keeps_them() -> None:
    decoder = ChatDecoder(max_event_bytes=100)
    big = b"".join(b"data: " + b"y" * 40 + b"\n" for _ in range(5)) + b"\n"
    with pytest.raises(rawsse.SSEProtocolError, match="max_event_bytes") as info:
        decoder.feed(good("a") + big)
    assert info.value.events == [rawsse.TextDelta(0, "a")]


def test_parse_chat_stream_attaches_events_and_partial_to_an_sse_error() -> None:
    body = good("a") + b"data: " + b"x" * (16 * 1024 * 1024 + 1)  # over the default bound
    with pytest.raises(rawsse.SSEProtocolError) as info:
        parse_chat_stream([body[:10], body[10:]])
    assert info.value.events == [rawsse.TextDelta(0, "a")]
    assert info.value.partial is not None
    assert info.value.partial.text == "a"


def test_a_malformed_payload_before_a_long_line_is_raised_first() -> None:
    decoder = ChatDecoder(max_line_bytes=100)
    with pytest.raises(MalformedChunk) as info:
        decoder.feed(good("a") + BAD + b"data: " + b"x" * 200 + b"\n\n")
    assert info.value.events == [rawsse.TextDelta(0, "a")]
    with pytest.raises(rawsse.SSEProtocolError, match="failed earlier"):
        decoder.feed(b"")


# -- more numbers out of range --------------------------------------------------------


def test_a_cost_of_1e400_is_refused() -> None:
    with pytest.raises(MalformedChunk, match="cost is out of range"):
        parse_chat_stream(b'data: {"usage": {"cost": 1e400}}\n\n')


def test_a_created_time_beyond_two_to_the_53_is_refused() -> None:
    with pytest.raises(MalformedChunk, match="created is a number, not an integer in range"):
        parse_chat_stream(sse({"id": "g", "created": 10**400}))


@pytest.mark.parametrize(
    ("tokens", "seconds", "expected"),
    [(10, 2.0, 5.0), (10**400, 1.0, None), (2**53, 1e-300, None), (0, 1.0, None), (5, 0.0, None)],
)
def test_tokens_per_second_never_raises(
    tokens: int, seconds: float, expected: float | None
) -> None:
    assert tokens_per_second(tokens, seconds) == expected


def test_a_request_body_nested_deep_is_kept_as_text() -> None:
    deep = b"[" * 50_000 + b"]" * 50_000
    assert body_json(deep) == deep.decode()
    assert body_json(b'{"a": NaN}') == '{"a": NaN}'
    assert body_json(b'{"a": [1]}') == {"a": [1]}


# -- values carried verbatim by events are bounded in depth --------------------------

NESTED = "[" * 100 + "]" * 100  # parses, but deeper than events may carry


@pytest.mark.parametrize(
    "payload",
    [
        '{"system_fingerprint": ' + NESTED + "}",
        '{"choices": [{"index": 0, "logprobs": ' + NESTED + "}]}",
        '{"choices": [{"index": 0, "delta": {"annotations": ' + NESTED + "}}]}",
        '{"choices": [{"delta": {"reasoning_details": [{"index": 0, "x": ' + NESTED + "}]}}]}",
        '{"usage": {"completion_tokens": 1, "x": ' + NESTED + "}}",
    ],
)
def test_a_value_nested_deeper_than_64_levels_is_a_malformed_chunk(payload: str) -> None:
    with pytest.raises(MalformedChunk, match="nested deeper than 64 levels"):
        parse_chat_stream(b"data: " + payload.encode() + b"\n\n")


def test_an_error_chunk_nested_deep_still_surfaces_as_an_error() -> None:
    error = '{"code": 502, "message": "down", "metadata": {"raw": ' + NESTED + "}}"
    (event,) = parse_chat_stream(b'data: {"error": ' + error.encode() + b"}\n\n")
    assert event == rawsse.InBandError(
        None, 502, "down", None, {"error": {"code": 502, "message": "down"}}
    )


# -- snapshots cost what changed ------------------------------------------------------


def test_a_snapshot_reuses_what_did_not_change() -> None:
    acc = rawsse.ChatAccumulator()
    acc.add(rawsse.TextDelta(0, "a" * 1000))
    acc.add(rawsse.TextDelta(0, "b"))
    acc.add(rawsse.ToolCallDelta(1, 0, "c0", "f", "{}"))
    acc.add(rawsse.ToolCallDelta(1, 1, "c1", "g", "{"))
    first = acc.result()
    acc.add(rawsse.TextDelta(2, "other choice"))
    second = acc.result()
    assert second.choices[0].content is first.choices[0].content  # not joined again
    assert second.choices[1].tool_calls is first.choices[1].tool_calls
    acc.add(rawsse.ToolCallDelta(1, 1, None, None, "}"))
    third = acc.result()
    assert third.choices[1].tool_calls[1].arguments == "{}"
    assert second.choices[1].tool_calls[1].arguments == "{"
