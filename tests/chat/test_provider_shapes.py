"""Provider shapes other projects' suites found: Mistral content arrays, OpenAI custom tool calls,
and ``reasoning`` disagreeing with ``reasoning_details``.

The fixtures ``mistral_content_parts``, ``custom_tool_call`` and ``reasoning_disagree`` are
synthetic (written by ``fixtures/generate.py``); the chunks below are written here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawsse import (
    ChatStatus,
    Extra,
    MalformedChunk,
    ReasoningDelta,
    RoleDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    accumulate,
    parse_chat_stream,
)
from tests.conftest import FIXTURES
from tests.helpers import byte_at_a_time
from tests.server import ServerThread, drive, running_server, sse_script

EXPECTED: dict[str, Any] = json.loads((FIXTURES / "expected.json").read_text("utf-8"))
SHAPES = ["mistral_content_parts", "custom_tool_call", "reasoning_disagree"]


def sse(*deltas: dict[str, Any], choice: dict[str, Any] | None = None) -> bytes:
    """One ``data:`` event per delta (choice 0), no id or model, then nothing else."""
    out = b""
    for delta in deltas:
        body = {"choices": [{"index": 0, "delta": delta, **(choice or {})}]}
        out += b"data: " + json.dumps(body).encode() + b"\n\n"
    return out


def body(name: str) -> bytes:
    return (FIXTURES / EXPECTED[name]["body_file"]).read_bytes()


# -- Mistral: delta.content as an array of parts ----------------------------------------


def test_content_parts_become_reasoning_text_and_extras() -> None:
    reference = {"type": "reference", "reference_ids": [1]}
    parts = [
        {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
        {"type": "text", "text": "Yes"},
        reference,
        {"type": "text", "text": "."},
    ]
    assert parse_chat_stream(sse({"role": "assistant", "content": parts})) == [
        RoleDelta(0, "assistant"),
        ReasoningDelta(0, "hmm"),
        TextDelta(0, "Yes"),
        TextDelta(0, "."),
        Extra(0, {"content": [reference]}, "delta"),
    ]


def test_a_thinking_part_may_be_a_string_and_unknown_inner_parts_are_kept() -> None:
    image = {"type": "image_url", "image_url": "x"}
    parts = [{"type": "thinking", "thinking": [{"type": "text", "text": "a"}, image]}]
    assert parse_chat_stream(
        sse({"content": parts}, {"content": [{"type": "thinking", "thinking": "b"}]})
    ) == [
        ReasoningDelta(0, "a"),
        Extra(0, {"content": [image]}, "delta"),
        ReasoningDelta(0, "b"),
    ]


def test_empty_content_array_and_empty_text_parts_give_nothing() -> None:
    assert (
        parse_chat_stream(sse({"content": []}, {"content": [{"type": "text", "text": ""}]})) == []
    )


@pytest.mark.parametrize(
    "content",
    [
        [5],
        [{"type": "text", "text": 5}],
        [{"type": "text"}],
        [{"type": "thinking", "thinking": 5}],
        [{"type": "thinking", "thinking": [{"type": "text", "text": None}]}],
        {},
        0,
    ],
)
def test_bad_content_parts_raise_malformed_chunk(content: Any) -> None:
    data = sse({"content": "before"}) + sse({"content": content})
    with pytest.raises(MalformedChunk) as info:
        parse_chat_stream(data)
    assert info.value.events == [TextDelta(0, "before")]
    assert info.value.partial is not None
    assert info.value.partial.text == "before"


def test_mistral_fixture_assembles_text_reasoning_and_keeps_the_unknown_part() -> None:
    data = body("mistral_content_parts")
    events = parse_chat_stream(byte_at_a_time(data))
    assert events == parse_chat_stream(data)
    result = accumulate(events)
    want = EXPECTED["mistral_content_parts"]["choices"][0]
    (choice,) = result.choices
    assert choice.content == want["content"] == "Yes, 97 is prime."
    assert choice.reasoning == want["reasoning"]
    assert choice.extras == {"content": [[{"type": "reference", "reference_ids": [0, 2]}]]}
    assert "reference" not in choice.content
    assert result.status is ChatStatus.COMPLETE
    assert result.provider is None


# -- OpenAI custom tool calls --------------------------------------------------------


def test_custom_tool_call_fragments_are_modelled() -> None:
    first = {"index": 0, "id": "call_1", "type": "custom", "custom": {"name": "run", "input": ""}}
    more = [{"index": 0, "custom": {"input": piece}} for piece in ("print(", "1)")]
    events = parse_chat_stream(sse({"tool_calls": [first]}, *({"tool_calls": [m]} for m in more)))
    assert events == [
        ToolCallDelta(0, 0, "call_1", "run", "", "custom"),
        ToolCallDelta(0, 0, None, None, "print(", "custom"),
        ToolCallDelta(0, 0, None, None, "1)", "custom"),
    ]
    (call,) = accumulate(events).choices[0].tool_calls
    assert call == ToolCall(0, "call_1", "custom", "run", "print(1)")
    assert call.parsed_arguments() == "print(1)"


def test_custom_tool_call_unknown_keys_still_reach_extras() -> None:
    call = {"index": 0, "type": "custom", "custom": {"name": "run", "input": "x", "format": "f"}}
    events = parse_chat_stream(sse({"tool_calls": [call]}))
    assert events == [
        ToolCallDelta(0, 0, None, "run", "x", "custom"),
        Extra(0, {"tool_calls": [call]}, "delta"),
    ]


@pytest.mark.parametrize("custom", [5, "x", [1]])
def test_a_custom_field_that_is_not_an_object_is_malformed(custom: Any) -> None:
    with pytest.raises(MalformedChunk):
        parse_chat_stream(sse({"tool_calls": [{"index": 0, "custom": custom}]}))


def test_custom_tool_call_fixture() -> None:
    result = accumulate(parse_chat_stream(body("custom_tool_call")))
    want = EXPECTED["custom_tool_call"]["choices"][0]["tool_calls"][0]
    (call,) = result.choices[0].tool_calls
    assert call == ToolCall(0, want["id"], "custom", "run_python", "print(sum(range(1, 101)))")
    assert want["arguments"] == call.arguments
    assert result.choices[0].extras == {}, "nothing is left only in the extras"
    assert result.choices[0].finish_reason == "tool_calls"


# -- reasoning vs reasoning_details -----------------------------------------------------


def test_reasoning_details_win_when_reasoning_disagrees() -> None:
    detail = {"type": "reasoning.text", "text": "**bold**", "index": 0}
    events = parse_chat_stream(sse({"reasoning": "bold", "reasoning_details": [detail]}))
    assert events == [ReasoningDelta(0, "**bold**", (detail,))]


def test_reasoning_is_used_when_reasoning_details_are_absent_or_empty() -> None:
    events = parse_chat_stream(sse({"reasoning": "a", "reasoning_details": []}, {"reasoning": "b"}))
    assert events == [ReasoningDelta(0, "a"), ReasoningDelta(0, "b")]


def test_encrypted_details_give_no_text_even_beside_reasoning() -> None:
    detail = {"type": "reasoning.encrypted", "data": "gAAA", "index": 1}
    events = parse_chat_stream(sse({"reasoning": "[REDACTED]", "reasoning_details": [detail]}))
    assert events == [ReasoningDelta(0, "", (detail,))]


def test_reasoning_disagree_fixture() -> None:
    result = accumulate(parse_chat_stream(body("reasoning_disagree")))
    want = EXPECTED["reasoning_disagree"]["choices"][0]
    assert result.choices[0].reasoning == want["reasoning"]
    assert result.choices[0].reasoning.startswith("**2^31 - 1** is a *Mersenne* number")
    assert result.choices[0].reasoning.endswith(" Euler proved it in 1772.")
    assert "[REDACTED]" not in result.choices[0].reasoning
    assert [d["type"] for d in result.choices[0].reasoning_details] == [
        "reasoning.text",
        "reasoning.encrypted",
    ]


# -- through the real clients, over TCP ---------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with running_server() as s:
        yield s


@pytest.mark.parametrize("mode", ["sync", "asyncio", "trio"])
@pytest.mark.parametrize("name", SHAPES)
def test_shapes_stream_through_the_clients(server: ServerThread, mode: str, name: str) -> None:
    data = body(name)
    server.expect(sse_script(data, splits=list(range(97, len(data), 97))))
    out = drive(mode, server.url)
    assert out.error is None
    assert out.events == parse_chat_stream(data)
    assert out.result.status is ChatStatus.COMPLETE
    want = EXPECTED[name]["choices"][0]
    choice = out.result.choices[0]
    assert (choice.content, choice.reasoning) == (want["content"], want["reasoning"])
    assert [(t.type, t.name, t.arguments) for t in choice.tool_calls] == [
        (t["type"], t["name"], t["arguments"]) for t in want["tool_calls"]
    ]


# -- any parts, any custom field: decoded, or MalformedChunk --------------------------------

json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=4)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=4) | json_leaf}),
    st.fixed_dictionaries(
        {
            "type": st.just("thinking"),
            "thinking": st.text(max_size=4)
            | st.lists(
                st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=4)})
                | json_value,
                max_size=3,
            ),
        }
    ),
    json_value,
)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(part, max_size=4),
    custom=st.none()
    | json_value
    | st.fixed_dictionaries({}, optional={"name": json_value, "input": json_value}),
)
def test_any_parts_or_custom_call_decode_or_raise_malformed(parts: list[Any], custom: Any) -> None:
    delta: dict[str, Any] = {"content": parts}
    if custom is not None:
        delta["tool_calls"] = [{"index": 0, "custom": custom}]
    try:
        events = parse_chat_stream(sse(delta))
    except MalformedChunk as exc:
        error: MalformedChunk | None = exc
    else:
        error = None
    if error is not None:
        assert error.partial is not None
        return
    result = accumulate(events)
    texts = [p["text"] for p in parts if isinstance(p, dict) and p.get("type") == "text"]
    assert result.text == "".join(texts)
    kept = [p for p in parts if not (isinstance(p, dict) and p.get("type") in ("text", "thinking"))]
    extras = result.choices[0].extras.get("content", [[]])[0] if result.choices else []
    assert all(p in extras for p in kept), "unknown parts are kept, never dropped"
