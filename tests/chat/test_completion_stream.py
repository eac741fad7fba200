"""A non-streaming ``chat.completion`` and the event stream synthesised from it read as the same
message (``stream_from_completion`` against ``result_from_completion``)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rawsse import ChatStatus, accumulate, parse_chat_stream
from rawsse._completion import (
    completion_document,
    completion_from_result,
    result_from_completion,
    stream_from_completion,
)

text = st.text(max_size=12)
function_call = st.fixed_dictionaries(
    {
        "id": text,
        "type": st.just("function"),
        "function": st.fixed_dictionaries({"name": text, "arguments": text}),
    }
)
custom_call = st.fixed_dictionaries(
    {
        "id": text,
        "type": st.just("custom"),
        "custom": st.fixed_dictionaries({"name": text, "input": text}),
    }
)
message = st.fixed_dictionaries(
    {"role": st.just("assistant"), "content": st.none() | text},
    optional={
        "reasoning": text,
        "refusal": st.none() | text,
        "tool_calls": st.lists(function_call | custom_call, max_size=3),
    },
)
choice = st.fixed_dictionaries(
    {
        "message": message,
        "finish_reason": st.sampled_from(["stop", "length", "tool_calls", None]),
    },
    optional={"logprobs": st.none()},
)
usage = st.fixed_dictionaries(
    {"prompt_tokens": st.integers(0, 9), "completion_tokens": st.integers(0, 9)},
    optional={"cost": st.floats(0, 1)},
)


@st.composite
def completions(draw: Any) -> dict[str, Any]:
    choices = draw(st.lists(choice, min_size=1, max_size=3))
    doc: dict[str, Any] = {
        "id": draw(text),
        "object": "chat.completion",
        "created": draw(st.integers(0, 2**31)),
        "model": draw(text),
        "choices": [{"index": i, **c} for i, c in enumerate(choices)],
    }
    if draw(st.booleans()):
        doc["usage"] = draw(usage)
    return doc


@settings(max_examples=200, deadline=None)
@given(completions())
def test_the_synthesised_stream_reads_as_the_document(doc: dict[str, Any]) -> None:
    body = json.dumps(doc).encode()
    assert completion_document(body) == doc
    plain = result_from_completion(200, {"content-type": "application/json"}, body)
    streamed = accumulate(parse_chat_stream(stream_from_completion(doc)))
    assert streamed == plain
    assert streamed.status is ChatStatus.COMPLETE
    assert streamed.done
    # And back: the document a stream adds up to gives the same message again.
    again = completion_from_result(streamed)
    assert accumulate(parse_chat_stream(stream_from_completion(again))).choices == plain.choices


def test_what_is_not_a_completion() -> None:
    for body in (
        b"",
        b"data: {}\n\n",
        b'{"error": {"code": 400, "message": "bad"}}',
        b'{"choices": 5}',
        b"[1, 2]",
        b"{not json",
        b'{"choices": [{"delta": {}}]}',
    ):
        assert completion_document(body) is None, body
    assert completion_document(b' {"choices": [{"message": {}}]}') is not None
