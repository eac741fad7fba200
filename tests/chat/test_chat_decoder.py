"""ChatDecoder: exact events for every rule and quirk of PROTOCOL.md §4, §5 and §9."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rawsse import (
    CONTENT_EVENTS,
    ChatDecoder,
    Comment,
    Done,
    Extra,
    Finish,
    InBandError,
    KeepAlive,
    MalformedChunk,
    RawSSEError,
    ReasoningDelta,
    RefusalDelta,
    RoleDelta,
    ServerSentEvent,
    StreamStart,
    TextDelta,
    ToolCallDelta,
    Usage,
    parse_chat_stream,
)
from tests.helpers import byte_at_a_time

HEAD = {
    "id": "gen-1",
    "provider": "OpenAI",
    "model": "openai/gpt-4o",
    "object": "chat.completion.chunk",
    "created": 1700000000,
}
START = StreamStart("gen-1", "openai/gpt-4o", "OpenAI", 1700000000)


def data(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def chunk(*choices: dict[str, Any], **extra: Any) -> bytes:
    return data({**HEAD, "choices": list(choices), **extra})


def choice(index: int = 0, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"index": index, "delta": delta, "finish_reason": finish}


DONE = b"data: [DONE]\n\n"


def events(stream: bytes) -> list[Any]:
    return list(parse_chat_stream(stream))


# --- text, roles, start --------------------------------------------------------------------------


def test_plain_text_stream() -> None:
    stream = (
        chunk(choice(role="assistant", content=""))
        + chunk(choice(role="assistant", content="Hel"))
        + chunk(choice(role="assistant", content="lo"))
        + chunk(choice(finish="stop", role="assistant", content=""))
        + DONE
    )
    assert events(stream) == [
        START,
        RoleDelta(0, "assistant"),
        TextDelta(0, "Hel"),
        TextDelta(0, "lo"),
        Finish(0, "stop", None),
        Done(),
    ]


def test_stream_start_once_from_first_chunk_with_id_or_model() -> None:
    first = data({"choices": [], "debug": {"echo": 1}})
    stream = first + chunk(choice(content="a")) + data({**HEAD, "model": "other", "choices": []})
    assert events(stream) == [
        Extra(None, {"debug": {"echo": 1}}, "chunk"),
        START,
        TextDelta(0, "a"),
    ]


def test_role_reported_when_it_first_appears_and_when_it_changes() -> None:
    stream = (
        chunk(choice(role="assistant", content="a"))
        + chunk(choice(role="assistant", content="b"))
        + chunk(choice(role="tool", content="c"))
        + chunk(choice(index=1, role="tool"))
    )
    assert events(stream)[1:] == [
        RoleDelta(0, "assistant"),
        TextDelta(0, "a"),
        TextDelta(0, "b"),
        RoleDelta(0, "tool"),
        TextDelta(0, "c"),
        RoleDelta(1, "tool"),
    ]


@pytest.mark.parametrize(
    "delta",
    [{}, None, {"content": None}, {"content": ""}, {"content": None, "refusal": None}],
    ids=["empty", "null", "content-null", "content-empty", "all-null"],
)
def test_empty_and_null_deltas_produce_no_events(delta: Any) -> None:
    stream = chunk({"index": 0, "delta": delta, "finish_reason": None})
    assert events(stream) == [START]


def test_n_2_choices_carry_their_index() -> None:
    stream = (
        chunk(choice(0, content="a"), choice(1, content="b"))
        + chunk(choice(1, finish="stop", content="c"))
        + chunk(choice(0, finish="length"))
    )
    assert events(stream)[1:] == [
        TextDelta(0, "a"),
        TextDelta(1, "b"),
        TextDelta(1, "c"),
        Finish(1, "stop", None),
        Finish(0, "length", None),
    ]


def test_missing_choice_index_is_its_position() -> None:
    stream = chunk({"delta": {"content": "a"}}, {"delta": {"content": "b"}, "index": None})
    assert events(stream)[1:] == [TextDelta(0, "a"), TextDelta(1, "b")]


# --- SSE framing, [DONE], keep-alives ------------------------------------------------------------


def test_keep_alives_before_and_between_chunks() -> None:
    stream = (
        b": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\n"
        + chunk(choice(content="a"))
        + b": OPENROUTER PROCESSING\n\n"
        + chunk(choice(content="b"))
        + b": \n\n"
        + DONE
    )
    assert events(stream) == [
        KeepAlive("OPENROUTER PROCESSING"),
        KeepAlive("OPENROUTER PROCESSING"),
        START,
        TextDelta(0, "a"),
        KeepAlive("OPENROUTER PROCESSING"),
        TextDelta(0, "b"),
        KeepAlive(""),
        Done(),
    ]


def test_crlf_and_no_space_after_data_colon() -> None:
    stream = (chunk(choice(content="a")) + b"data:[DONE]\n\n").replace(b"\n", b"\r\n")
    assert events(stream) == [START, TextDelta(0, "a"), Done()]


def test_done_without_blank_line_is_discarded_at_eof() -> None:
    decoder = ChatDecoder()
    assert decoder.feed(chunk(choice(content="a")) + b"data: [DONE]\n") == [
        START,
        TextDelta(0, "a"),
    ]
    assert decoder.close() == []
    assert not decoder.done


def test_events_after_done_are_ignored_and_counted() -> None:
    decoder = ChatDecoder()
    out = decoder.feed(DONE + chunk(choice(content="late")) + b": ping\n\n")
    assert out == [Done()]
    assert decoder.done
    assert decoder.ignored_after_done == 2
    assert decoder.feed(b"data: not json\n\n") == []
    assert decoder.ignored_after_done == 3
    assert decoder.close() == []


@pytest.mark.parametrize(
    "payload", [b"data: [DONE] \n\n", b"data: [done]\n\n", b"data: [DONE]x\n\n"]
)
def test_done_is_an_exact_match(payload: bytes) -> None:
    with pytest.raises(MalformedChunk):
        events(payload)


def test_empty_data_payload_is_ignored() -> None:
    assert events(b"data:\n\n" + b"data: \n\n" + DONE) == [Done()]


def test_decode_event_takes_parsed_sse_items() -> None:
    decoder = ChatDecoder()
    payload = json.dumps({**HEAD, "choices": [choice(content="x")]})
    assert decoder.decode_event(Comment("hi")) == [KeepAlive("hi")]
    assert decoder.decode_event(ServerSentEvent(data=payload)) == [START, TextDelta(0, "x")]
    assert decoder.decode_event(ServerSentEvent(data="[DONE]")) == [Done()]
    assert decoder.done


def test_feed_of_nothing_is_a_no_op() -> None:
    decoder = ChatDecoder()
    assert decoder.feed(b"") == []
    assert decoder.close() == []


def test_chunk_split_inside_a_multibyte_character() -> None:
    stream = chunk(choice(content="数据🙂")) + DONE
    assert events(stream) == parse_chat_stream(byte_at_a_time(stream))


# --- finish reasons ------------------------------------------------------------------------------


def test_finish_repeated_and_content_after_finish_are_kept() -> None:
    stream = (
        chunk({"index": 0, "delta": {"content": "a"}, "finish_reason": "stop"})
        + chunk({"index": 0, "delta": {"content": "b"}, "finish_reason": None})
        + chunk(
            {"index": 0, "delta": {}, "finish_reason": "stop", "native_finish_reason": "STOP"},
            usage={"prompt_tokens": 1},
        )
    )
    assert events(stream)[1:] == [
        TextDelta(0, "a"),
        Finish(0, "stop", None),
        TextDelta(0, "b"),
        Finish(0, "stop", "STOP"),
        Usage(1, None, None, None, None, None, {"prompt_tokens": 1}),
    ]


def test_native_finish_reason_alone_is_a_finish() -> None:
    stream = chunk({"index": 0, "delta": {}, "finish_reason": None, "native_finish_reason": "x"})
    assert events(stream)[1:] == [Finish(0, None, "x")]


# --- tool calls ----------------------------------------------------------------------------------


def test_tool_call_fragments_with_null_content() -> None:
    first = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    stream = (
        chunk(choice(role="assistant", content=None, tool_calls=[first]))
        + chunk(choice(content=None, tool_calls=[{"index": 0, "function": {"arguments": '{"a"'}}]))
        + chunk(
            choice(tool_calls=[{"index": 0, "type": "function", "function": {"arguments": ":1}"}}])
        )
        + chunk(choice(tool_calls=[{"function": {"arguments": ""}}]))
        + chunk(choice(finish="tool_calls", tool_calls=[]))
    )
    assert events(stream)[1:] == [
        RoleDelta(0, "assistant"),
        ToolCallDelta(0, 0, "call_1", "get_weather", "", "function"),
        ToolCallDelta(0, 0, None, None, '{"a"', None),
        ToolCallDelta(0, 0, None, None, ":1}", "function"),
        ToolCallDelta(0, None, None, None, "", None),
        Finish(0, "tool_calls", None),
    ]


def test_tool_call_with_unmodelled_keys_is_also_reported_whole() -> None:
    call = {
        "index": 0,
        "id": "c",
        "function": {"name": "f", "arguments": "{}"},
        "extra_content": {"google": {"thought_signature": "sig"}},
    }
    stream = chunk(choice(tool_calls=[call]))
    assert events(stream)[1:] == [
        ToolCallDelta(0, 0, "c", "f", "{}", None),
        Extra(0, {"tool_calls": [call]}, "delta"),
    ]


# --- reasoning -----------------------------------------------------------------------------------

TEXT_DETAIL = {
    "type": "reasoning.text",
    "text": "Think",
    "format": "anthropic-claude-v1",
    "index": 0,
}
SIGNATURE = {
    "type": "reasoning.text",
    "signature": "sig==",
    "format": "anthropic-claude-v1",
    "index": 0,
}
ENCRYPTED = {"type": "reasoning.encrypted", "data": "gAAAA", "id": "rs_1", "index": 0}
SUMMARY = {"type": "reasoning.summary", "summary": "Sum", "index": 1}


def test_reasoning_field_wins_over_identical_details_text() -> None:
    stream = chunk(choice(content="", reasoning="Think", reasoning_details=[TEXT_DETAIL]))
    assert events(stream)[1:] == [ReasoningDelta(0, "Think", (TEXT_DETAIL,))]


def test_reasoning_content_of_deepseek_and_vllm() -> None:
    stream = chunk(choice(reasoning_content="We need")) + chunk(choice(reasoning_content=""))
    assert events(stream)[1:] == [ReasoningDelta(0, "We need", ())]


def test_reasoning_wins_over_reasoning_content() -> None:
    stream = chunk(choice(reasoning="a", reasoning_content="b"))
    assert events(stream)[1:] == [ReasoningDelta(0, "a", ())]


def test_details_text_and_summary_when_no_plain_reasoning() -> None:
    stream = chunk(choice(reasoning=None, reasoning_details=[TEXT_DETAIL, SUMMARY]))
    assert events(stream)[1:] == [ReasoningDelta(0, "ThinkSum", (TEXT_DETAIL, SUMMARY))]


def test_encrypted_and_signature_only_details_give_no_text() -> None:
    stream = chunk(choice(reasoning_details=[ENCRYPTED])) + chunk(
        choice(reasoning=None, reasoning_details=[SIGNATURE])
    )
    assert events(stream)[1:] == [
        ReasoningDelta(0, "", (ENCRYPTED,)),
        ReasoningDelta(0, "", (SIGNATURE,)),
    ]


def test_encrypted_entry_with_text_gives_no_text() -> None:
    odd = {"type": "reasoning.encrypted", "text": "secret", "data": "x"}
    assert events(chunk(choice(reasoning_details=[odd])))[1:] == [ReasoningDelta(0, "", (odd,))]


def test_empty_reasoning_details_give_nothing() -> None:
    stream = chunk(choice(content="", reasoning=None, reasoning_details=[]))
    assert events(stream) == [START]


def test_reasoning_precedes_content_in_the_same_delta() -> None:
    stream = chunk(choice(content="A", reasoning="r"))
    assert events(stream)[1:] == [ReasoningDelta(0, "r", ()), TextDelta(0, "A")]


def test_refusal() -> None:
    stream = chunk(choice(content=None, refusal="I'm sorry")) + chunk(choice(refusal=""))
    assert events(stream)[1:] == [RefusalDelta(0, "I'm sorry")]


def test_content_events_are_the_token_events() -> None:
    assert (TextDelta, ReasoningDelta, ToolCallDelta, RefusalDelta) == CONTENT_EVENTS


# --- usage ---------------------------------------------------------------------------------------


def test_usage_only_chunk_with_empty_choices() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "cost": 0,
        "prompt_tokens_details": {"cached_tokens": 3},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    stream = chunk(usage=usage)
    assert events(stream)[1:] == [Usage(10, 5, 15, 2, 3, 0.0, usage)]
    assert type(events(stream)[1].cost) is float


def test_usage_top_level_cached_tokens_and_float_cost() -> None:
    usage = {"prompt_tokens": 1, "cached_tokens": 0, "cost": 0.0076509169000000005}
    assert events(chunk(usage=usage))[1:] == [
        Usage(1, None, None, None, 0, 0.0076509169000000005, usage)
    ]


def test_usage_null_on_every_chunk_is_ignored() -> None:
    assert events(chunk(choice(content="a"), usage=None)) == [START, TextDelta(0, "a")]


def test_usage_each_time_it_is_sent() -> None:
    stream = chunk(usage={"total_tokens": 1}) + chunk(usage={"total_tokens": 2})
    assert [e.total_tokens for e in events(stream) if type(e) is Usage] == [1, 2]


# --- in-band errors (§5) -------------------------------------------------------------------------


def test_docs_mid_stream_error_chunk() -> None:
    error = {"code": 429, "message": "Rate limit exceeded", "metadata": {"error_type": "x"}}
    raw = {**HEAD, "error": error, "choices": [choice(finish="error", content="")]}
    stream = chunk(choice(content="Partial")) + data(raw) + DONE
    assert events(stream) == [
        START,
        TextDelta(0, "Partial"),
        Finish(0, "error", None),
        InBandError(None, 429, "Rate limit exceeded", {"error_type": "x"}, raw),
        Done(),
    ]


def test_error_chunk_with_null_finish_and_usage_after_length() -> None:
    raw = {
        **HEAD,
        "error": {"code": 400, "message": "Token limit reached"},
        "choices": [choice(content="")],
        "usage": {"total_tokens": 3},
    }
    stream = chunk(choice(finish="length", content="x")) + data(raw) + DONE
    assert events(stream)[1:] == [
        TextDelta(0, "x"),
        Finish(0, "length", None),
        Usage(None, None, 3, None, None, None, {"total_tokens": 3}),
        InBandError(None, 400, "Token limit reached", None, raw),
        Done(),
    ]


def test_choice_level_error() -> None:
    bad = {"index": 1, "delta": {}, "finish_reason": "error", "error": {"code": "server_error"}}
    raw = {**HEAD, "choices": [bad]}
    assert events(data(raw))[1:] == [
        Finish(1, "error", None),
        InBandError(1, "server_error", "", None, raw),
    ]


def test_availability_error_without_code_and_error_as_text() -> None:
    error = {"message": "No endpoints", "error_type": "not_found", "http_status": 404}
    raw1 = {"error": error}
    raw2 = {"error": "boom"}
    assert events(data(raw1) + data(raw2)) == [
        InBandError(None, 404, "No endpoints", None, raw1),
        InBandError(None, None, "boom", None, raw2),
    ]


# --- unmodelled fields ---------------------------------------------------------------------------


def test_unmodelled_fields_at_each_level_and_nulls_dropped() -> None:
    annotations = [{"type": "url_citation", "url_citation": {"url": "https://x"}}]
    logprobs = {"content": [{"token": "a", "logprob": -0.1}]}
    raw = {
        **HEAD,
        "system_fingerprint": "fp_1",
        "obfuscation": None,
        "choices": [
            {
                "index": 0,
                "delta": {"content": "a", "annotations": annotations, "audio": None},
                "finish_reason": None,
                "logprobs": logprobs,
                "seed": 5,
            }
        ],
    }
    assert events(data(raw)) == [
        START,
        Extra(None, {"system_fingerprint": "fp_1"}, "chunk"),
        TextDelta(0, "a"),
        Extra(0, {"annotations": annotations}, "delta"),
        Extra(0, {"logprobs": logprobs, "seed": 5}, "choice"),
    ]


def test_logprobs_null_object_constant_and_usage_null_give_no_extra() -> None:
    raw = {**HEAD, "usage": None, "choices": [{**choice(content="a"), "logprobs": None}]}
    assert events(data(raw)) == [START, TextDelta(0, "a")]


def test_non_chat_json_decodes_to_extras() -> None:
    assert events(b'event: ping\ndata: {"type": "ping"}\n\n') == [
        Extra(None, {"type": "ping"}, "chunk")
    ]


# --- malformed input -----------------------------------------------------------------------------

MALFORMED = {
    "not-json": b"data: {oops\n\n",
    "array": b"data: [1, 2]\n\n",
    "string": b'data: "x"\n\n',
    "choices-5": data({"choices": 5}),
    "choices-obj": data({"choices": {}}),
    "choice-str": data({"choices": ["x"]}),
    "index-str": data({"choices": [{"index": "0", "delta": {}}]}),
    "index-bool": data({"choices": [{"index": True, "delta": {}}]}),
    "delta-list": data({"choices": [{"index": 0, "delta": [1]}]}),
    "content-7": chunk(choice(content=7)),
    "content-false": chunk(choice(content=False)),
    "role-5": chunk(choice(role=5)),
    "reasoning-list": chunk(choice(reasoning=["x"])),
    "details-str": chunk(choice(reasoning_details="x")),
    "detail-text-5": chunk(choice(reasoning_details=[{"type": "reasoning.text", "text": 5}])),
    "tool_calls-x": chunk(choice(tool_calls="x")),
    "tool-call-str": chunk(choice(tool_calls=["x"])),
    "tool-index-str": chunk(choice(tool_calls=[{"index": "0"}])),
    "tool-args-obj": chunk(choice(tool_calls=[{"index": 0, "function": {"arguments": {}}}])),
    "function-str": chunk(choice(tool_calls=[{"index": 0, "function": "f"}])),
    "refusal-1": chunk(choice(refusal=1)),
    "finish-1": chunk({"index": 0, "delta": {}, "finish_reason": 1}),
    "usage-3": chunk(usage=3),
    "tokens-str": chunk(usage={"prompt_tokens": "3"}),
    "tokens-bool": chunk(usage={"prompt_tokens": True}),
    "cost-str": chunk(usage={"cost": "0.1"}),
    "cost-huge": chunk(usage={"cost": 10**400}),
    "error-5": chunk(error=5),
    "id-5": data({"id": 5, "choices": []}),
    "created-str": data({"id": "x", "created": "now", "choices": []}),
    "deep": b"data: " + b"[" * 100_000 + b"\n\n",
    "huge-int": b'data: {"n": ' + b"1" * 5000 + b"}\n\n",
}


@pytest.mark.parametrize("payload", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_payload_raises_malformed_chunk(payload: bytes) -> None:
    decoder = ChatDecoder()
    with pytest.raises(MalformedChunk) as info:
        decoder.feed(payload)
    assert isinstance(info.value, RawSSEError)
    assert info.value.payload == payload.decode()[6:-2]
    assert info.value.events == []


def test_malformed_chunk_keeps_earlier_events_and_decoder_goes_on() -> None:
    decoder = ChatDecoder()
    stream = (
        chunk(choice(content="a"))
        + b"data: {garbage\n\n"
        + chunk(choice(content="b"))
        + b": ka\n\n"
        + DONE
    )
    with pytest.raises(MalformedChunk) as info:
        decoder.feed(stream)
    assert info.value.events == [START, TextDelta(0, "a")]
    assert info.value.payload == "{garbage"
    assert info.value.partial is None
    assert "not JSON" in str(info.value)
    # What followed the bad payload in the same feed comes with the next call.
    assert decoder.feed(b"") == [TextDelta(0, "b"), KeepAlive("ka"), Done()]
    assert decoder.done


def test_decode_event_returns_what_followed_a_malformed_payload_first() -> None:
    decoder = ChatDecoder()
    with pytest.raises(MalformedChunk):
        decoder.feed(b"data: x\n\n: after\n\n")
    assert decoder.decode_event(Comment("next")) == [KeepAlive("after"), KeepAlive("next")]


def test_failed_chunk_changes_no_state() -> None:
    decoder = ChatDecoder()
    bad = data({**HEAD, "choices": [{"index": 0, "delta": {"role": "assistant", "content": 7}}]})
    with pytest.raises(MalformedChunk) as info:
        decoder.feed(bad)
    assert info.value.events == []
    # Neither the stream start nor the role were used up by the bad chunk.
    assert decoder.feed(chunk(choice(role="assistant", content="x"))) == [
        START,
        RoleDelta(0, "assistant"),
        TextDelta(0, "x"),
    ]


def test_parse_chat_stream_malformed_carries_all_events_and_partial() -> None:
    stream = [chunk(choice(content="a")), chunk(choice(content="b")) + b"data: 5\n\n" + DONE]
    with pytest.raises(MalformedChunk) as info:
        parse_chat_stream(stream)
    assert info.value.events == [START, TextDelta(0, "a"), TextDelta(0, "b")]
    assert info.value.partial is not None
    assert info.value.partial.text == "ab"
    assert info.value.payload == "5"


def test_parse_chat_stream_accepts_bytes_and_iterables() -> None:
    stream = chunk(choice(content="a")) + DONE
    expected = [START, TextDelta(0, "a"), Done()]
    assert parse_chat_stream(stream) == expected
    assert parse_chat_stream(bytearray(stream)) == expected
    assert parse_chat_stream(iter(byte_at_a_time(stream))) == expected


def test_events_are_immutable_values() -> None:
    assert TextDelta(0, "a") == TextDelta(0, "a")
    assert TextDelta(0, "a") != RefusalDelta(0, "a")
    assert TextDelta(0, "a") != (0, "a")
    assert ToolCallDelta(0, 0, "i", "n", "").type is None
    assert Extra(0, {}).scope == "delta"
    assert repr(Finish(0, "stop", None)) == "Finish(index=0, reason='stop', native_reason=None)"
    with pytest.raises(AttributeError):
        TextDelta(0, "a").text = "b"  # type: ignore[misc]
