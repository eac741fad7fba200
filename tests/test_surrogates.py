"""UTF-16 surrogate pairs split across deltas are joined; unpaired ones become U+FFFD."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawsse import (
    ChatDecoder,
    Done,
    Finish,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    accumulate,
    parse_chat_stream,
)
from rawsse._http_errors import status_error
from rawsse._unicode import has_surrogates, mend_surrogates

from .helpers import byte_at_a_time, every_split

HIGH, LOW = "\\ud83d", "\\ude00"  # 😀 as JSON escapes


def delta(fields: str, index: int = 0) -> bytes:
    return b'data: {"choices": [{"index": %d, "delta": {%s}}]}\n\n' % (index, fields.encode())


def text(escaped: str, index: int = 0) -> bytes:
    return delta(f'"content": "{escaped}"', index)


def test_a_pair_split_across_two_text_deltas_is_joined() -> None:
    events = parse_chat_stream(text("a" + HIGH) + text(LOW + "b"))
    assert events == [TextDelta(0, "a"), TextDelta(0, "\U0001f600b")]
    assert accumulate(events).text == "a\U0001f600b"


def test_a_delta_that_is_only_a_high_surrogate_gives_no_event_until_its_pair() -> None:
    decoder = ChatDecoder()
    assert decoder.feed(text(HIGH)) == []
    assert decoder.feed(text(LOW)) == [TextDelta(0, "\U0001f600")]
    assert decoder.surrogates_replaced == 0


def test_an_unpaired_high_surrogate_at_the_end_becomes_a_replacement_character() -> None:
    decoder = ChatDecoder()
    assert decoder.feed(text("a" + HIGH)) == [TextDelta(0, "a")]
    assert decoder.close() == [TextDelta(0, "\ufffd")]
    assert decoder.surrogates_replaced == 1


def test_a_high_surrogate_before_done_is_replaced_before_done() -> None:
    events = parse_chat_stream(text("a" + HIGH) + b"data: [DONE]\n\n")
    assert events == [TextDelta(0, "a"), TextDelta(0, "\ufffd"), Done()]


def test_a_high_surrogate_followed_by_text_without_its_pair() -> None:
    decoder = ChatDecoder()
    events = decoder.feed(text("a" + HIGH) + text("b"))
    assert events == [TextDelta(0, "a"), TextDelta(0, "\ufffdb")]
    assert decoder.surrogates_replaced == 1


@pytest.mark.parametrize("lone", [LOW, HIGH + "x", "x" + LOW + HIGH + "y"])
def test_lone_surrogates_inside_a_delta_are_replaced(lone: str) -> None:
    decoder = ChatDecoder()
    events = decoder.feed(text(lone) + text("!"))
    result = accumulate(events)
    result.text.encode("utf-8")
    assert "\ufffd" in result.text
    assert decoder.surrogates_replaced == lone.count("\\u")


def test_a_finish_replaces_a_held_surrogate_first() -> None:
    finish = b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n'
    events = parse_chat_stream(text("a" + HIGH) + finish)
    assert events == [TextDelta(0, "a"), TextDelta(0, "\ufffd"), Finish(0, "stop", None)]


def test_fields_and_choices_hold_their_own_surrogates() -> None:
    body = (
        text(HIGH, 0)
        + text(HIGH, 1)
        + delta(f'"reasoning": "r{HIGH}"')
        + delta(f'"refusal": "n{HIGH}"')
        + delta(f'"reasoning": "{LOW}"')
        + delta(f'"refusal": "{LOW}"')
        + text(LOW, 1)
        + text(LOW, 0)
    )
    events = parse_chat_stream(body)
    assert events == [
        ReasoningDelta(0, "r"),
        RefusalDelta(0, "n"),
        ReasoningDelta(0, "\U0001f600"),
        RefusalDelta(0, "\U0001f600"),
        TextDelta(1, "\U0001f600"),
        TextDelta(0, "\U0001f600"),
    ]


def test_tool_call_arguments_are_joined_per_tool_call() -> None:
    def call(tool: int, args: str) -> bytes:
        entry = f'{{"index": {tool}, "function": {{"arguments": "{args}"}}}}'
        return delta(f'"tool_calls": [{entry}]')

    events = parse_chat_stream(
        call(0, '{\\"e\\": \\"' + HIGH) + call(1, "{}") + call(0, LOW + '\\"}')
    )
    assert [e.arguments for e in events if isinstance(e, ToolCallDelta)] == [
        '{"e": "',
        "{}",
        '\U0001f600"}',
    ]
    result = accumulate(events)
    assert result.choices[0].tool_calls[0].parsed_arguments() == {"e": "\U0001f600"}


def test_a_malformed_chunk_after_a_held_surrogate_changes_nothing() -> None:
    decoder = ChatDecoder()
    assert decoder.feed(text(HIGH)) == []
    with pytest.raises(Exception, match="malformed"):
        decoder.feed(b'data: {"choices": 5}\n\n')
    assert decoder.feed(text(LOW)) == [TextDelta(0, "\U0001f600")]


def test_the_whole_stream_every_split_and_byte_at_a_time() -> None:
    body = text("x" + HIGH) + text(LOW + "y") + b"data: [DONE]\n\n"
    expected = [TextDelta(0, "x"), TextDelta(0, "\U0001f600y"), Done()]
    for parts in [*every_split(body), byte_at_a_time(body)]:
        assert parse_chat_stream(parts) == expected


_CHARS = st.sampled_from(["a", "é", "\U0001f600", "\U0001d11e", "\U00010348", "z"])


@settings(max_examples=200, deadline=None)
@given(st.lists(_CHARS, min_size=1, max_size=12), st.data())
def test_any_split_of_utf16_text_in_any_chunking_gives_the_text(
    chars: list[str], data: st.DataObject
) -> None:
    whole = "".join(chars)
    # The text as JS would split it: UTF-16 code units, cut anywhere (even inside a pair).
    units = json.dumps(whole)[1:-1]
    escapes = [units[i : i + 6] if units[i] == "\\" else units[i] for i in _unit_starts(units)]
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(escapes) - 1)), max_size=6)))
    pieces = ["".join(escapes[a:b]) for a, b in zip([0, *cuts], [*cuts, len(escapes)], strict=True)]
    body = b"".join(text(p) for p in pieces if p)
    # ... and the bytes read in any chunks.
    splits = sorted(data.draw(st.sets(st.integers(0, len(body)), max_size=8)))
    chunks = [body[a:b] for a, b in zip([0, *splits], [*splits, len(body)], strict=True)]
    result = accumulate(parse_chat_stream(chunks))
    assert result.text == whole


def _unit_starts(units: str) -> list[int]:
    starts, i = [], 0
    while i < len(units):
        starts.append(i)
        i += 6 if units[i] == "\\" else 1
    return starts


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([HIGH, LOW, "a", "\\u00e9"]), min_size=1, max_size=10))
def test_any_sequence_of_surrogate_escapes_gives_writable_text(pieces: list[str]) -> None:
    decoder = ChatDecoder()
    events = [*decoder.feed(b"".join(text(p) for p in pieces)), *decoder.close()]
    result = accumulate(events)
    result.text.encode("utf-8")
    for event in events:
        assert isinstance(event, TextDelta)
        event.text.encode("utf-8")


def test_reasoning_details_text_split_across_entries_is_joined_in_the_result() -> None:
    def detail(escaped: str) -> bytes:
        entry = f'{{"index": 0, "type": "reasoning.text", "text": "{escaped}"}}'
        return delta(f'"reasoning_details": [{entry}]')

    result = accumulate(parse_chat_stream(detail("a" + HIGH) + detail(LOW) + detail(HIGH)))
    assert result.choices[0].reasoning == "a\U0001f600\ufffd"
    assert result.choices[0].reasoning_details[0]["text"] == "a\U0001f600\ufffd"


def test_error_messages_and_stream_metadata_hold_no_lone_surrogate() -> None:
    body = (
        b'data: {"id": "g\\ud83d", "model": "m\\ude00", "choices": []}\n\n'
        b'data: {"error": {"code": 1, "message": "bad \\ud83d"}}\n\n'
        b'data: {"error": "worse \\ude00"}\n\n'
    )
    result = accumulate(parse_chat_stream(body))
    assert (result.id, result.model) == ("g\ufffd", "m\ufffd")
    assert [e.message for e in result.errors] == ["bad \ufffd", "worse \ufffd"]


@pytest.mark.parametrize(
    ("text", "expected", "lone"),
    [
        ("plain", "plain", 0),
        ("\ud83d\ude00", "\U0001f600", 0),
        ("a\ud83d", "a\ufffd", 1),
        ("\ude00\ud83d", "\ufffd\ufffd", 2),
        ("\ufffd\ud800", "\ufffd\ufffd", 1),
    ],
)
def test_mend_surrogates(text: str, expected: str, lone: int) -> None:
    assert mend_surrogates(text) == (expected, lone)
    assert has_surrogates(text) == (text != expected)


@pytest.mark.parametrize(
    "body", [b'{"error": {"message": "no \\ud83d"}}', b'{"error": "no \\ud83d"}']
)
def test_an_http_error_message_holds_no_lone_surrogate(body: bytes) -> None:
    err = status_error(500, {}, body)
    assert err.message == "no \ufffd"
    str(err).encode("utf-8")
