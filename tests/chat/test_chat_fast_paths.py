"""The decoder's shortcuts decide as the reference they skip: depth bounds, surrogate escapes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawsse import (
    ChatAccumulator,
    ChatDecoder,
    ChatEvent,
    MalformedChunk,
    RoleDelta,
    TextDelta,
    accumulate,
    parse_chat_stream,
)
from rawsse._json import nested_deeper_than


def nest(depth: int, leaf: Any = 1, shape: str = "list") -> Any:
    """``leaf`` inside ``depth`` arrays (or objects)."""
    for _ in range(depth):
        leaf = [leaf] if shape == "list" else {"k": leaf}
    return leaf


# Where events carry a value verbatim, and how to find the value in the parsed payload.
PLACES: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "chunk extra": (lambda v: {"x": v}, lambda p: {"x": p["x"]}),
    "choice extra": (
        lambda v: {"choices": [{"index": 0, "x": v}]},
        lambda p: {"x": p["choices"][0]["x"]},
    ),
    "delta extra": (
        lambda v: {"choices": [{"index": 0, "delta": {"x": v}}]},
        lambda p: {"x": p["choices"][0]["delta"]["x"]},
    ),
    "usage": (lambda v: {"usage": {"x": v}}, lambda p: p["usage"]),
    "reasoning details": (
        lambda v: {"choices": [{"index": 0, "delta": {"reasoning_details": [{"x": v}]}}]},
        lambda p: p["choices"][0]["delta"]["reasoning_details"],
    ),
}


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("shape", ["list", "object"])
@pytest.mark.parametrize("depth", [0, 1, 2, 3, 61, 62, 63, 64, 65, 66])
def test_a_value_is_refused_exactly_when_it_nests_deeper_than_64(
    place: str, shape: str, depth: int
) -> None:
    build, carried = PLACES[place]
    payload = build(nest(depth, shape=shape))
    body = b"data: " + json.dumps(payload).encode() + b"\n\n"
    if nested_deeper_than(carried(payload), 64):
        with pytest.raises(MalformedChunk, match="nested deeper than 64 levels"):
            parse_chat_stream(body)
    else:
        parse_chat_stream(body)


def test_a_deep_value_in_a_payload_with_few_brackets_elsewhere_is_refused() -> None:
    # 65 levels is 130 brackets: the count alone cannot let it through.
    payload = {"x": [1, 2, "[[[[", nest(64)]}
    with pytest.raises(MalformedChunk, match="nested deeper than 64 levels"):
        parse_chat_stream(b"data: " + json.dumps(payload).encode() + b"\n\n")


def text_of(body: bytes) -> tuple[str, int]:
    decoder = ChatDecoder()
    events = decoder.feed(body) + decoder.close()
    return "".join(e.text for e in events if isinstance(e, TextDelta)), decoder.surrogates_replaced


@pytest.mark.parametrize(
    ("content", "text", "replaced"),
    [
        ("\\ud83d\\ude00", "\U0001f600", 0),  # a pair in one delta
        ("\\uD83D\\uDE00", "\U0001f600", 0),  # upper-case hex
        ("a\\ud83d", "a\ufffd", 1),  # its pair never came
        ("\\\\ud83d", "\\ud83d", 0),  # an escaped backslash, then plain text
        ("\\n\\t\\u00e9", "\n\té", 0),  # escapes, none of them a surrogate
        ("plain", "plain", 0),
    ],
)
def test_only_a_surrogate_escape_is_mended(content: str, text: str, replaced: int) -> None:
    body = (
        b'data: {"choices": [{"index": 0, "delta": {"content": "' + content.encode() + b'"}}]}\n\n'
    )
    assert text_of(body) == (text, replaced)


# Halves of 😀, whole characters and a backslash, so that pairs are split every way.
PIECES = st.sampled_from(["a", "é", "\\", "\ud83d", "\ude00", "\U0001f600"])


@given(st.lists(st.text(alphabet=PIECES, max_size=6), max_size=4))
def test_escaped_deltas_decode_as_their_utf16_text_would(parts: list[str]) -> None:
    # json.dumps escapes every non-ASCII character, lone surrogates included.
    chunks = [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in parts]
    escaped = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    mended = "".join(parts).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    assert text_of(escaped)[0] == mended


def test_the_accumulator_takes_text_of_a_choice_it_has_not_seen_yet() -> None:
    events: list[ChatEvent] = [
        TextDelta(1, "a"),
        TextDelta(1, "b"),
        RoleDelta(0, "assistant"),
        TextDelta(0, "c"),
    ]
    accumulator = ChatAccumulator()
    for event in events:
        accumulator.add(event)
    result = accumulator.result()
    assert [(c.index, c.role, c.content) for c in result.choices] == [
        (0, "assistant", "c"),
        (1, None, "ab"),
    ]
    assert result == accumulate(events)
