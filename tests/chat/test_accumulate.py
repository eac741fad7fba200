"""ChatAccumulator / accumulate: assembly, tool calls, reasoning, usage and status."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rawsse import (
    ChatAccumulator,
    ChatResult,
    ChatStatus,
    ChoiceResult,
    Done,
    Extra,
    Finish,
    InBandError,
    KeepAlive,
    MalformedChunk,
    ReasoningDelta,
    RefusalDelta,
    RoleDelta,
    StreamStart,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    accumulate,
    parse_chat_stream,
)
from tests.conftest import CORPUS

START = StreamStart("gen-1", "m", "P", 7)
USAGE = Usage(1, 2, 3, None, None, 0.5, {"total_tokens": 3})


def test_text_role_and_metadata() -> None:
    result = accumulate(
        [
            KeepAlive("x"),
            START,
            RoleDelta(0, "assistant"),
            TextDelta(0, "Hel"),
            TextDelta(0, "lo"),
            Finish(0, "stop", "end_turn"),
            USAGE,
            Done(),
        ]
    )
    assert result == ChatResult(
        id="gen-1",
        model="m",
        provider="P",
        created=7,
        choices=(
            ChoiceResult(
                index=0,
                role="assistant",
                content="Hello",
                finish_reason="stop",
                native_finish_reason="end_turn",
            ),
        ),
        usage=USAGE,
        status=ChatStatus.COMPLETE,
        done=True,
    )
    assert result.text == "Hello"


def test_empty_stream() -> None:
    result = accumulate([])
    assert result == ChatResult()
    assert result.status == "truncated"
    assert result.text == ""


def test_choices_sorted_and_text_is_choice_zero() -> None:
    result = accumulate([TextDelta(1, "b"), TextDelta(0, "a"), TextDelta(1, "c")])
    assert [(c.index, c.content) for c in result.choices] == [(0, "a"), (1, "bc")]
    assert result.text == "a"
    assert accumulate([TextDelta(1, "b")]).text == ""


def test_result_is_a_snapshot_at_any_moment() -> None:
    acc = ChatAccumulator()
    acc.add(TextDelta(0, "a"))
    acc.add(ToolCallDelta(0, 0, "c", "f", "{"))
    acc.add(ReasoningDelta(0, "r", ({"type": "reasoning.text", "text": "r", "index": 0},)))
    acc.add(Extra(0, {"annotations": [1]}))
    first = acc.result()
    acc.add(TextDelta(0, "b"))
    acc.add(ToolCallDelta(0, 0, None, None, "}"))
    acc.add(ReasoningDelta(0, "s", ({"type": "reasoning.text", "text": "s", "index": 0},)))
    acc.add(Extra(0, {"annotations": [2]}))
    second = acc.result()
    first.choices[0].reasoning_details[0]["text"] = "mutated"
    first.choices[0].extras["annotations"].append("mutated")
    third = acc.result()
    assert first.text == "a"
    assert first.choices[0].tool_calls[0].arguments == "{"
    assert second.text == third.text == "ab"
    assert second.choices[0].tool_calls[0].arguments == "{}"
    assert third.choices[0].reasoning == "rs"
    assert third.choices[0].reasoning_details == [
        {"type": "reasoning.text", "text": "rs", "index": 0}
    ]
    assert third.choices[0].extras == {"annotations": [[1], [2]]}
    assert first.status == second.status == "truncated"


def test_refusal_none_until_sent() -> None:
    assert accumulate([TextDelta(0, "a")]).choices[0].refusal is None
    result = accumulate([RefusalDelta(0, "I'm "), RefusalDelta(0, "sorry")])
    assert result.choices[0].refusal == "I'm sorry"


def test_last_non_null_finish_reasons_win() -> None:
    result = accumulate(
        [Finish(0, "length", "length"), Finish(0, "stop", None), Finish(0, None, "x")]
    )
    assert result.choices[0].finish_reason == "stop"
    assert result.choices[0].native_finish_reason == "x"


def test_usage_last_one_wins_never_summed() -> None:
    later = Usage(1, 5, 6, None, None, None, {})
    assert accumulate([USAGE, later]).usage == later


def test_stream_start_first_one_wins() -> None:
    result = accumulate([START, StreamStart("other", "x", None, None)])
    assert (result.id, result.model) == ("gen-1", "m")


def test_unknown_object_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        ChatAccumulator().add("text")  # type: ignore[arg-type]


# --- tool calls ----------------------------------------------------------------------------------


def calls(*events: ToolCallDelta) -> tuple[ToolCall, ...]:
    return accumulate(events).choices[0].tool_calls


def test_tool_call_fragments_joined_by_index() -> None:
    assert calls(
        ToolCallDelta(0, 0, "call_1", "get_weather", "", "function"),
        ToolCallDelta(0, 0, None, None, '{"city":'),
        ToolCallDelta(0, 0, None, None, '"Paris"}'),
    ) == (ToolCall(0, "call_1", "function", "get_weather", '{"city":"Paris"}'),)


def test_parallel_tool_calls_interleaved() -> None:
    assert calls(
        ToolCallDelta(0, 0, "a", "f", "", "function"),
        ToolCallDelta(0, 1, "b", "g", "", "function"),
        ToolCallDelta(0, 0, None, None, "{}"),
        ToolCallDelta(0, 1, None, None, "[1]"),
    ) == (
        ToolCall(0, "a", "function", "f", "{}"),
        ToolCall(1, "b", "function", "g", "[1]"),
    )


def test_new_id_or_name_under_a_used_index_starts_a_new_call() -> None:
    assert calls(
        ToolCallDelta(0, 0, "a", "f", "{}"),
        ToolCallDelta(0, 0, "b", "f", "{}"),
        ToolCallDelta(0, 0, None, "g", "{}"),
        ToolCallDelta(0, 0, "b", None, "x"),
        ToolCallDelta(0, 0, None, None, "y"),
    ) == (
        ToolCall(0, "a", None, "f", "{}"),
        ToolCall(0, "b", None, "f", "{}"),
        ToolCall(0, "b", None, "g", "{}xy"),  # a call without an id takes a late one
    )


def test_same_id_repeated_continues_the_call() -> None:
    assert calls(
        ToolCallDelta(0, 0, "a", "f", "{"),
        ToolCallDelta(0, 0, "a", "f", "}"),
    ) == (ToolCall(0, "a", None, "f", "{}"),)


def test_missing_index_continues_the_last_open_call() -> None:
    assert calls(
        ToolCallDelta(0, 0, "a", "f", ""),
        ToolCallDelta(0, 1, "b", "g", ""),
        ToolCallDelta(0, None, None, None, "{}"),
        ToolCallDelta(0, 0, None, None, "[]"),
        ToolCallDelta(0, None, None, None, "!"),
    ) == (ToolCall(0, "a", None, "f", "[]!"), ToolCall(1, "b", None, "g", "{}"))


def test_missing_index_without_open_call_or_with_new_id_starts_one() -> None:
    assert calls(
        ToolCallDelta(0, None, "a", "f", "{}"),
        ToolCallDelta(0, None, "b", "g", "[]"),
        ToolCallDelta(0, None, None, None, "!"),
    ) == (ToolCall(0, "a", None, "f", "{}"), ToolCall(1, "b", None, "g", "[]!"))


def test_late_id_and_name_fill_in() -> None:
    assert calls(
        ToolCallDelta(0, 0, None, None, "{"),
        ToolCallDelta(0, 0, "a", "f", "}", "function"),
    ) == (ToolCall(0, "a", "function", "f", "{}"),)


def test_tool_calls_per_choice() -> None:
    result = accumulate([ToolCallDelta(0, 0, "a", "f", "{}"), ToolCallDelta(1, 0, "b", "f", "{}")])
    assert [c.tool_calls[0].id for c in result.choices] == ["a", "b"]


def test_parsed_arguments() -> None:
    assert ToolCall(0, "a", "function", "f", "").parsed_arguments() == {}
    assert ToolCall(0, "a", "function", "f", "  ").parsed_arguments() == {}
    assert ToolCall(0, "a", "function", "f", '{"x": [1]}').parsed_arguments() == {"x": [1]}
    with pytest.raises(MalformedChunk) as info:
        ToolCall(0, "a", "function", "f", '{"x": ').parsed_arguments()
    assert info.value.payload == '{"x": '
    assert "'f'" in str(info.value)
    assert "not valid JSON" in str(info.value)


def test_long_arguments_are_linear() -> None:
    n = 200_000
    acc = ChatAccumulator()
    acc.add(ToolCallDelta(0, 0, "a", "f", "["))
    for _ in range(n):
        acc.add(ToolCallDelta(0, 0, None, None, "1,"))
    acc.add(ToolCallDelta(0, 0, None, None, "1]"))
    assert len(acc.result().choices[0].tool_calls[0].parsed_arguments()) == n + 1


# --- reasoning -----------------------------------------------------------------------------------


def test_reasoning_details_merged_by_index() -> None:
    first = {"type": "reasoning.text", "text": "", "signature": "", "format": "f", "index": 0}
    text1 = {"type": "reasoning.text", "text": "Think", "format": "f", "index": 0}
    text2 = {"type": "reasoning.text", "text": "ing", "format": "f", "index": 0}
    signature = {"type": "reasoning.text", "signature": "sig", "format": "f", "index": 0}
    encrypted = {"type": "reasoning.encrypted", "data": "gAAA", "id": "rs", "index": 1}
    summary1 = {"type": "reasoning.summary", "summary": "S", "index": 2}
    summary2 = {"type": "reasoning.summary", "summary": "um", "index": 2}
    loose = {"type": "reasoning.text", "text": "no index"}
    result = accumulate(
        [
            ReasoningDelta(0, "", (first,)),
            ReasoningDelta(0, "Think", (text1,)),
            ReasoningDelta(0, "ing", (text2,)),
            ReasoningDelta(0, "", (signature,)),
            ReasoningDelta(0, "", (encrypted,)),
            ReasoningDelta(0, "Sum", (summary1, summary2)),
            ReasoningDelta(0, "no index", (loose,)),
        ]
    )
    choice = result.choices[0]
    assert choice.reasoning == "ThinkingSumno index"
    assert choice.reasoning_details == [
        {
            "type": "reasoning.text",
            "text": "Thinking",
            "signature": "sig",
            "format": "f",
            "index": 0,
        },
        encrypted,
        {"type": "reasoning.summary", "summary": "Sum", "index": 2},
        loose,
    ]
    assert "gAAA" not in choice.reasoning


def test_reasoning_text_only_from_events() -> None:
    # The decoder picks one source per delta; the accumulator joins those texts.
    result = accumulate([ReasoningDelta(0, "a"), ReasoningDelta(0, "b")])
    assert result.choices[0].reasoning == "ab"
    assert result.choices[0].reasoning_details == []


# --- status --------------------------------------------------------------------------------------


def status(*events: object) -> ChatStatus:
    return accumulate(events).status  # type: ignore[arg-type]


def test_status_complete_when_done_arrived() -> None:
    assert status(TextDelta(0, "a"), Done()) == "complete"
    assert status(Done()) == ChatStatus.COMPLETE


def test_status_complete_without_done_when_all_finished_and_usage_arrived() -> None:
    assert status(TextDelta(0, "a"), Finish(0, "stop", None), USAGE) == "complete"
    assert status(TextDelta(0, "a"), Finish(0, "length", None), USAGE) == "complete"


def test_status_truncated_without_done() -> None:
    assert status(TextDelta(0, "a")) == "truncated"
    assert status(TextDelta(0, "a"), Finish(0, "stop", None)) == "truncated"  # no usage
    assert status(TextDelta(0, "a"), USAGE) == "truncated"  # not finished
    # Choice 1 never finished.
    assert status(Finish(0, "stop", None), TextDelta(1, "b"), USAGE) == "truncated"
    assert status(Finish(0, None, "native"), USAGE) == "truncated"
    assert status(USAGE) == "truncated"  # no choice at all


def test_status_error_after_in_band_error_even_with_done() -> None:
    error = InBandError(None, 429, "Rate limit", None, {})
    result = accumulate([TextDelta(0, "partial"), error, Done()])
    assert result.status == "error"
    assert result.error == error
    assert result.errors == (error,)
    assert result.text == "partial"


def test_status_error_from_finish_reason_error_alone() -> None:
    result = accumulate([TextDelta(0, "a"), Finish(0, "error", "MALFORMED_FUNCTION_CALL"), Done()])
    assert result.status == "error"
    assert result.error is None


def test_choice_error_creates_the_choice_and_first_error_is_kept() -> None:
    first = InBandError(1, 500, "a", None, {})
    second = InBandError(None, 400, "b", None, {})
    result = accumulate([first, second])
    assert [c.index for c in result.choices] == [1]
    assert result.error == first
    assert result.errors == (first, second)


def test_chat_status_is_a_string() -> None:
    assert ChatStatus.COMPLETE == "complete"
    assert str(ChatStatus.TIMED_OUT) == "timed_out"
    assert {s.value for s in ChatStatus} == {
        "complete",
        "truncated",
        "error",
        "cancelled",
        "timed_out",
    }
    result = dataclasses.replace(accumulate([Done()]), status=ChatStatus.CANCELLED)
    assert result.status == "cancelled"
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.status = ChatStatus.COMPLETE  # type: ignore[misc]


def test_extras_collected_in_order() -> None:
    result = accumulate(
        [
            Extra(None, {"system_fingerprint": "fp"}, "chunk"),
            Extra(0, {"logprobs": {"a": 1}}, "choice"),
            Extra(0, {"annotations": [1]}),
            Extra(None, {"system_fingerprint": "fp", "service_tier": "x"}, "chunk"),
        ]
    )
    assert result.extras == {"system_fingerprint": ["fp", "fp"], "service_tier": ["x"]}
    assert result.choices[0].extras == {"logprobs": [{"a": 1}], "annotations": [[1]]}


# --- real captures: exact results ----------------------------------------------------------------


def corpus(name: str) -> bytes:
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return Path(path).read_bytes()


def test_corpus_reasoning_signature_and_no_double_text() -> None:
    result = accumulate(
        parse_chat_stream(corpus("openrouter__chat_reasoning_details_claude45_google.sse"))
    )
    choice = result.choices[0]
    assert result.status == "complete"
    assert choice.content == "2 + 2 = 4"
    assert choice.reasoning == "This is a simple arithmetic question. 2+2 equals 4."
    [detail] = choice.reasoning_details
    assert detail["text"] == choice.reasoning
    assert detail["signature"].startswith("Et0BCkgIChACGAIqQA2s7h7t")
    assert result.usage is not None
    assert result.usage.cost == 0.000669


def test_corpus_encrypted_reasoning_kept_but_not_as_text() -> None:
    result = accumulate(parse_chat_stream(corpus("openrouter__chat_reasoning_o3_encrypted.sse")))
    choice = result.choices[0]
    assert choice.reasoning == ""
    assert [d["type"] for d in choice.reasoning_details] == ["reasoning.encrypted"]
    assert choice.reasoning_details[0]["data"].startswith("gAAAAABpCCSI")


def test_corpus_empty_args_tool_call() -> None:
    result = accumulate(
        parse_chat_stream(corpus("openrouter__chat_tool_call_empty_args_claude_bedrock.sse"))
    )
    [call] = result.choices[0].tool_calls
    assert call == ToolCall(
        0, "toolu_bdrk_01AMXFNuQYF6fxS1hryPtu9K", "function", "get_all_tabs", ""
    )
    assert call.parsed_arguments() == {}
    assert result.usage is not None
    assert (result.usage.total_tokens, result.usage.cost) == (25160, None)


def test_corpus_midstream_error_after_length() -> None:
    result = accumulate(
        parse_chat_stream(corpus("openrouter__chat_midstream_error_token_limit_minimax.sse"))
    )
    assert result.status == "error"
    assert result.error is not None
    assert (result.error.code, result.error.message) == (400, "Token limit reached")
    assert result.choices[0].finish_reason == "length"
    assert result.usage is not None
    assert (result.usage.reasoning_tokens, result.usage.cost) == (11, 0.0)
    assert result.done


def test_corpus_parallel_tool_calls() -> None:
    result = accumulate(parse_chat_stream(corpus("openai__chat_parallel_tool_calls_gpt4o.sse")))
    assert [(c.name, c.parsed_arguments()) for c in result.choices[0].tool_calls] == [
        ("GetWeatherArgs", {"city": "Edinburgh", "country": "GB", "units": "c"}),
        ("get_stock_price", {"ticker": "AAPL", "exchange": "NASDAQ"}),
    ]


def test_corpus_usage_repeated_cloudflare_last_wins() -> None:
    events = parse_chat_stream(corpus("cloudflare__chat_tool_call_gptoss20b.sse"))
    usages = [e for e in events if type(e) is Usage]
    assert len(usages) >= 2
    result = accumulate(events)
    assert result.usage == usages[-1]
    assert result.choices[0].reasoning.startswith("We need to call the function get_weather")


def test_corpus_n3() -> None:
    result = accumulate(parse_chat_stream(corpus("openai__chat_multiple_choices_n3.sse")))
    assert [c.index for c in result.choices] == [0, 1, 2]
    assert all(c.finish_reason == "stop" for c in result.choices)
    assert result.text.startswith('{"city":"San Francisco"')
