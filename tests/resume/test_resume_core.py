"""ResumeCore: the sans-I/O decisions and bookkeeping of a resumed stream."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from rawsse import (
    ChatEvent,
    ChatStatus,
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
    StallTimeout,
    StreamError,
    StreamMetrics,
    StreamStart,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    TotalTimeout,
    Usage,
)
from rawsse._chat_events import Continued
from rawsse._errors import ContinuationError
from rawsse._resume import (
    DEFAULT_MAX_CONTINUATIONS,
    Continue,
    Resume,
    ResumeCore,
    Stop,
)
from rawsse._resume_totals import join_metrics, sum_usage

MESSAGES = [{"role": "user", "content": "Say hello"}]
START = StreamStart("gen-1", "m", "P", 7)
START2 = StreamStart("gen-2", "m", "P", 8)
USAGE1 = Usage(
    10, 5, 15, None, 0, 0.25, {"prompt_tokens": 10, "completion_tokens": 5, "cost": 0.25}
)
USAGE2 = Usage(14, 3, 17, None, 4, 0.5, {"prompt_tokens": 14, "completion_tokens": 3, "cost": 0.5})
CUT = IncompleteStreamError("the connection closed before the stream finished (no [DONE])")


def texts(events: list[Any], index: int = 0) -> str:
    return "".join(e.text for e in events if type(e) is TextDelta and e.index == index)


def continue_(decision: Continue | Stop) -> Continue:
    assert isinstance(decision, Continue), decision
    return decision


def stop(decision: Continue | Stop) -> Stop:
    assert isinstance(decision, Stop), decision
    return decision


# -- the policy ---------------------------------------------------------------


def test_resume_defaults() -> None:
    policy = Resume()
    assert policy.max_continuations == DEFAULT_MAX_CONTINUATIONS == 3
    assert (policy.cut, policy.timeout, policy.error, policy.length) == (True, True, True, False)
    assert policy.mode == "prefill"
    assert policy.max_overlap == 32
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.length = True  # type: ignore[misc]
    assert Resume(length=True) == Resume(length=True)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_continuations": -1}, {"max_overlap": -1}, {"max_continuations": True}, {"mode": "x"}],
)
def test_resume_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Resume"):
        Resume(**kwargs)


@pytest.mark.parametrize(
    ("err", "content", "reason"),
    [
        (CUT, False, "cut"),
        (CUT, True, "cut"),
        (StallTimeout("s"), True, "timeout"),
        (IdleTimeout("i"), True, "timeout"),
        (FirstTokenTimeout("f"), True, "timeout"),
        (IdleTimeout("i"), False, None),  # before any content: the retries decide
        (FirstTokenTimeout("f"), False, None),
        (TotalTimeout("t"), True, None),  # total bounds everything
        (StreamError("e", code=503), True, "error"),
        (StreamError("e", code=429), True, None),
        (StreamError("e", code=500), True, None),
        (StreamError("e", code=400, metadata={"error_type": "provider_overloaded"}), True, "error"),
        (MalformedChunk("m", payload="x"), True, None),
        (RateLimitError("r", status=429), True, None),
    ],
)
def test_triggers(err: Exception, content: bool, reason: str | None) -> None:
    assert Resume().reason_for(err, content=content) == reason


def test_each_trigger_can_be_turned_off() -> None:
    assert Resume(cut=False).reason_for(CUT, content=True) is None
    assert Resume(timeout=False).reason_for(StallTimeout("s"), content=True) is None
    assert Resume(error=False).reason_for(StreamError("e", code=503), content=True) is None


@pytest.mark.parametrize(
    ("code", "metadata", "raw", "retriable"),
    [
        (502, None, {}, True),
        (503, None, {}, True),
        (504, None, {}, True),
        (408, None, {}, True),
        (524, None, {}, True),
        (529, None, {}, True),
        (429, {"error_type": "rate_limit_exceeded"}, {}, False),
        (500, {"error_type": "server"}, {}, False),
        (400, {"error_type": "context_length_exceeded"}, {}, False),
        (None, {"error_type": "provider_unavailable"}, {}, True),
        (None, {"error_type": "timeout"}, {}, True),
        ("overloaded_error", None, {}, True),
        ("server_error", None, {}, False),
        (None, None, {"error": {"type": "overloaded_error", "message": "Overloaded"}}, True),
        (None, None, {"error": {"error_type": "provider_overloaded"}}, True),
        (None, None, {"error": {"http_status": 503, "message": "x"}}, True),
        (None, None, {"error": {"message": "Provider overloaded"}}, False),  # never the message
        (True, None, {}, False),
    ],
)
def test_retriable_in_band_errors(code: Any, metadata: Any, raw: Any, retriable: bool) -> None:
    assert Resume().retriable(code, metadata, raw) is retriable


# -- one cut, continued by prefill -----------------------------------------------


def first_part(core: ResumeCore) -> list[Any]:
    return core.feed(
        [
            KeepAlive("OPENROUTER PROCESSING"),
            START,
            RoleDelta(0, "assistant"),
            TextDelta(0, "Hello"),
            TextDelta(0, " wor"),
        ]
    )


def test_a_cut_continues_with_the_text_as_a_prefill() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={"temperature": 0})
    assert first_part(core) == [
        KeepAlive("OPENROUTER PROCESSING"),
        START,
        RoleDelta(0, "assistant"),
        TextDelta(0, "Hello"),
        TextDelta(0, " wor"),
    ]
    decision = continue_(core.decide(CUT))
    assert decision.event == Continued(0, "cut", 1, str(CUT))
    assert decision.messages == [*MESSAGES, {"role": "assistant", "content": "Hello wor"}]
    assert decision.params == {"temperature": 0}
    # The continuation repeats "wor" across two deltas and has its own start and role.
    out = core.feed(
        [
            START2,
            RoleDelta(0, "assistant"),
            TextDelta(0, "wo"),
            TextDelta(0, "rld"),
            TextDelta(0, "!"),
        ]
    )
    assert out == [TextDelta(0, "ld"), TextDelta(0, "!")]
    out = core.feed([Finish(0, "stop", "stop"), USAGE2, Done()])
    assert out == [Finish(0, "stop", "stop")]
    assert core.end_part() == []
    final = stop(core.decide(None))
    assert final.error is None
    summed = Usage(14, 3, 17, None, 4, 0.5, USAGE2.raw)  # the first part sent no usage
    assert final.events == [summed, Done()]
    result = core.result()
    assert result.text == "Hello world!"
    assert result.status is ChatStatus.COMPLETE
    assert result.id == "gen-1"
    assert result.usage == summed
    assert core.seams == 1
    assert core.continuations == {0: 1}


def test_trailing_whitespace_is_not_prefilled_and_its_repeat_is_dropped() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    core.feed([TextDelta(0, "Hello \n")])
    decision = continue_(core.decide(CUT))
    assert decision.messages[-1] == {"role": "assistant", "content": "Hello"}
    assert core.feed([TextDelta(0, " "), TextDelta(0, "\nworld")]) == [TextDelta(0, "world")]


def test_prefix_flag_and_the_callers_own_prefill() -> None:
    messages = [*MESSAGES, {"role": "assistant", "content": "Sure:"}]
    core = ResumeCore(Resume(prefix=True), messages=messages, params={})
    core.feed([TextDelta(0, " here")])
    decision = continue_(core.decide(CUT))
    assert decision.messages == [
        *MESSAGES,
        {"role": "assistant", "content": "Sure: here", "prefix": True},
    ]


def test_usage_and_cost_are_summed_over_requests() -> None:
    core = ResumeCore(Resume(length=True), messages=MESSAGES, params={"max_tokens": 5})
    core.feed([START, TextDelta(0, "one two"), Finish(0, "length", "length"), USAGE1, Done()])
    assert core.end_part() == []
    decision = continue_(core.decide(None))
    assert decision.event == Continued(0, "length", 1, 'finish_reason "length"')
    assert decision.params == {"max_tokens": 5}
    core.feed([START2, TextDelta(0, " three"), Finish(0, "stop", "stop"), USAGE2, Done()])
    core.end_part()
    final = stop(core.decide(None))
    usage = final.events[0]
    assert usage == Usage(
        24,
        8,
        32,
        None,
        4,
        0.75,
        {"prompt_tokens": 24, "completion_tokens": 8, "cost": 0.75},
    )
    assert final.events[1:] == [Done()]
    assert core.result().usage == usage
    assert core.result().choices[0].finish_reason == "stop"


def test_sum_usage() -> None:
    assert sum_usage([]) is None
    assert sum_usage([USAGE1]) is USAGE1
    a = Usage(1, None, None, None, None, None, {"x": {"y": 1}, "flag": True, "m": "a"})
    b = Usage(2, None, None, None, None, 0.5, {"x": {"y": 2, "z": 1}, "flag": False, "m": None})
    assert sum_usage([a, b]) == Usage(
        3, None, None, None, None, 0.5, {"x": {"y": 3, "z": 1}, "flag": False, "m": "a"}
    )


def test_length_is_delivered_as_sent_without_the_opt_in() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    events: list[ChatEvent] = [TextDelta(0, "one"), Finish(0, "length", "length"), USAGE1, Done()]
    assert core.feed(events) == events[:2]
    core.end_part()
    assert stop(core.decide(None)) == Stop(None, [USAGE1, Done()])


def test_length_beyond_the_cap_is_delivered_at_the_end() -> None:
    core = ResumeCore(Resume(length=True, max_continuations=0), messages=MESSAGES, params={})
    assert core.feed([TextDelta(0, "one"), Finish(0, "length", None), Done()]) == [
        TextDelta(0, "one")
    ]
    core.end_part()
    assert stop(core.decide(None)) == Stop(None, [Finish(0, "length", None), Done()])
    assert core.result().status is ChatStatus.COMPLETE
    assert core.result().choices[0].finish_reason == "length"


# -- caps, give-ups and partials --------------------------------------------------


def test_continuations_are_capped_and_the_last_failure_carries_the_partial() -> None:
    core = ResumeCore(Resume(max_continuations=2), messages=MESSAGES, params={})
    core.feed([START, TextDelta(0, "a")])
    for attempt, more in ((1, "b"), (2, "cd")):
        assert continue_(core.decide(CUT)).event.attempt == attempt
        core.feed([TextDelta(0, more)])
    last = IncompleteStreamError("cut again")
    final = stop(core.decide(last))
    assert final.error is last
    assert last.partial is not None
    assert last.partial.text == "abcd"
    assert last.partial.status is ChatStatus.TRUNCATED
    assert core.seams == 2


def test_a_failure_that_is_no_trigger_is_raised_with_the_partial() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    core.feed([TextDelta(0, "abc")])
    err = TotalTimeout("the request took longer than 1 s", timeout=1.0)
    assert stop(core.decide(err)).error is err
    assert err.partial is not None
    assert err.partial.text == "abc"
    assert err.partial.status is ChatStatus.TIMED_OUT


def test_a_refused_continuation_becomes_a_continuation_error_with_the_partial() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    core.feed([TextDelta(0, "abc")])
    continue_(core.decide(CUT))
    refused = RateLimitError("rate limited", status=429)
    err = stop(core.decide(refused)).error
    assert isinstance(err, ContinuationError)
    assert err.__cause__ is refused
    assert err.partial is not None
    assert err.partial.text == "abc"
    assert err.partial.status is ChatStatus.ERROR


def test_an_error_before_anything_was_delivered_is_raised_as_it_is() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    refused = RateLimitError("rate limited", status=429)
    assert stop(core.decide(refused)).error is refused


def test_no_continuation_starts_after_the_deadline() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    core.feed([TextDelta(0, "abc")])
    assert stop(core.decide(CUT, now=10.0, deadline=10.0)).error is CUT
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    core.feed([TextDelta(0, "abc")])
    continue_(core.decide(CUT, now=9.0, deadline=10.0))


def test_a_cut_after_every_choice_finished_is_not_continued() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    core.feed([TextDelta(0, "abc"), Finish(0, "stop", "stop")])
    assert stop(core.decide(CUT)).error is CUT
    assert CUT.partial is not None
    assert CUT.partial.choices[0].finish_reason == "stop"


def test_a_cut_before_any_content_sends_the_request_again() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={"n": 1})
    core.feed([KeepAlive("x"), START])
    decision = continue_(core.decide(CUT))
    assert decision.messages == MESSAGES
    assert decision.params == {"n": 1}
    assert core.feed([START2, RoleDelta(0, "assistant"), TextDelta(0, "Hi")]) == [
        RoleDelta(0, "assistant"),
        TextDelta(0, "Hi"),
    ]


# -- in-band errors ----------------------------------------------------------------


def error_event(code: int, error_type: str) -> InBandError:
    metadata: dict[str, Any] = {"error_type": error_type}
    error = {"code": code, "message": "m", "metadata": metadata}
    return InBandError(None, code, "m", metadata, {"error": error})


def test_a_retriable_in_band_error_is_not_delivered_and_continues() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    out = core.feed(
        [TextDelta(0, "abc"), error_event(502, "provider_unavailable"), TextDelta(0, "x")]
    )
    assert out == [TextDelta(0, "abc")]
    pending = core.pending
    assert isinstance(pending, StreamError)
    assert pending.code == 502
    decision = continue_(core.decide(pending))
    assert decision.event.reason == "error"
    assert core.pending is None


def test_a_non_retriable_in_band_error_is_delivered() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    event = error_event(400, "context_length_exceeded")
    assert core.feed([TextDelta(0, "abc"), event]) == [TextDelta(0, "abc"), event]
    assert core.pending is None
    assert core.result().status is ChatStatus.ERROR


# -- n > 1 ---------------------------------------------------------------------------


def test_two_choices_are_continued_one_request_each() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={"n": 2})
    core.feed(
        [
            START,
            RoleDelta(0, "assistant"),
            RoleDelta(1, "assistant"),
            TextDelta(1, "Maybe"),
            TextDelta(0, "How"),
        ]
    )
    first = continue_(core.decide(CUT))
    assert first.event == Continued(0, "cut", 1, str(CUT))
    assert first.messages[-1] == {"role": "assistant", "content": "How"}
    assert first.params == {"n": 1}
    # The request continues choice 0 as its own choice 0; anything else is ignored.
    out = core.feed(
        [
            RoleDelta(0, "assistant"),
            TextDelta(0, " about"),
            TextDelta(1, "zzz"),
            Finish(0, "stop", None),
        ]
    )
    assert out == [TextDelta(0, " about"), Finish(0, "stop", None)]
    core.feed([USAGE1, Done()])
    core.end_part()
    second = continue_(core.decide(None))
    assert second.event == Continued(1, "cut", 1, str(CUT))
    assert second.messages[-1] == {"role": "assistant", "content": "Maybe"}
    out = core.feed([RoleDelta(0, "assistant"), TextDelta(0, " Pixel"), Finish(0, "stop", None)])
    assert out == [TextDelta(1, " Pixel"), Finish(1, "stop", None)]
    core.feed([USAGE2, Done()])
    core.end_part()
    final = stop(core.decide(None))
    assert final.error is None
    result = core.result()
    assert [c.content for c in result.choices] == ["How about", "Maybe Pixel"]
    assert result.status is ChatStatus.COMPLETE
    assert core.seams == 2


def test_a_choice_with_no_text_yet_is_regenerated_with_the_same_index() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={"n": 2})
    core.feed([TextDelta(0, "How about"), Finish(0, "stop", None)])
    decision = continue_(core.decide(CUT))
    assert decision.event.index == 1
    assert decision.messages == MESSAGES
    assert decision.params == {"n": 2}
    out = core.feed([TextDelta(0, "How"), TextDelta(1, "Maybe"), Finish(1, "stop", None)])
    assert out == [TextDelta(1, "Maybe"), Finish(1, "stop", None)]


# -- tool calls and reasoning ---------------------------------------------------------


CALL = [
    ToolCallDelta(0, 0, "call_1", "get_weather", ""),
    ToolCallDelta(0, 0, None, None, '{"city":'),
]


def test_tool_calls_are_held_until_their_choice_finishes() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    rest = ToolCallDelta(0, 0, None, None, '"Lisbon"}')
    assert core.feed([TextDelta(0, "Let me check."), *CALL]) == [TextDelta(0, "Let me check.")]
    assert core.feed([rest, Finish(0, "tool_calls", None)]) == [
        *CALL,
        rest,
        Finish(0, "tool_calls", None),
    ]


def test_a_tool_call_in_flight_is_dropped_and_made_again_whole() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    core.feed([TextDelta(0, "Let me check."), *CALL])
    decision = continue_(core.decide(CUT))
    assert decision.messages[-1] == {"role": "assistant", "content": "Let me check."}
    again = [
        ToolCallDelta(0, 0, "call_2", "get_weather", ""),
        ToolCallDelta(0, 0, None, None, '{"city":"Porto"}'),
    ]
    assert core.feed([*again, Finish(0, "tool_calls", None), Done()]) == [
        *again,
        Finish(0, "tool_calls", None),
    ]
    core.end_part()
    stop(core.decide(None))
    assert core.result().choices[0].tool_calls == (
        ToolCall(0, "call_2", None, "get_weather", '{"city":"Porto"}'),
    )


def test_tool_calls_of_a_stream_without_finish_are_delivered_at_its_clean_end() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    assert core.feed([*CALL, Done()]) == []
    assert core.end_part() == CALL


def test_reasoning_in_flight_is_regenerated_and_the_repeat_dropped() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    detail = {"type": "reasoning.text", "index": 0, "text": "Let me "}
    core.feed([ReasoningDelta(0, "Let me ", (detail,)), ReasoningDelta(0, "think")])
    decision = continue_(core.decide(StallTimeout("no content for 1 s", timeout=1.0)))
    assert decision.event == Continued(0, "timeout", 1, "no content for 1 s")
    assert decision.messages == MESSAGES  # no text to prefill: the request again
    signed = {"type": "reasoning.text", "index": 0, "text": "", "signature": "sig"}
    out = core.feed(
        [
            ReasoningDelta(0, "Let me ", (detail,)),
            ReasoningDelta(0, "think about it."),
            ReasoningDelta(0, "", (signed,)),
            TextDelta(0, "Hi"),
        ]
    )
    moved = {**detail, "index": 1}  # a new block: never merged with the first one
    assert out == [
        ReasoningDelta(0, "", (moved,)),
        ReasoningDelta(0, " about it."),
        ReasoningDelta(0, "", ({**signed, "index": 1},)),
        TextDelta(0, "Hi"),
    ]
    reasoning = core.result().choices[0]
    assert reasoning.reasoning == "Let me think about it."
    assert [d["index"] for d in reasoning.reasoning_details] == [0, 1]


def test_regenerated_reasoning_that_differs_is_delivered_as_a_new_block() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    core.feed([ReasoningDelta(0, "Plan A")])
    continue_(core.decide(CUT))
    assert core.feed([ReasoningDelta(0, "Pla"), ReasoningDelta(0, "n B")]) == [
        ReasoningDelta(0, "Plan B")
    ]
    assert core.result().choices[0].reasoning == "Plan APlan B"


def test_restart_mode_drops_the_reproduced_text() -> None:
    core = ResumeCore(Resume(mode="restart"), messages=MESSAGES, params={})
    core.feed([TextDelta(0, "Hello"), TextDelta(0, " wor")])
    decision = continue_(core.decide(CUT))
    assert decision.messages == MESSAGES
    assert core.feed([TextDelta(0, "Hello w"), TextDelta(0, "orld")]) == [TextDelta(0, "ld")]


def test_restart_mode_fails_when_the_new_answer_differs() -> None:
    core = ResumeCore(Resume(mode="restart"), messages=MESSAGES, params={})
    core.feed([TextDelta(0, "Hello wor")])
    continue_(core.decide(CUT))
    assert core.feed([TextDelta(0, "Hi there"), TextDelta(0, "!")]) == []
    pending = core.pending
    assert isinstance(pending, ContinuationError)
    err = stop(core.decide(pending)).error
    assert err is pending
    assert err.partial is not None
    assert err.partial.text == "Hello wor"


def test_restart_mode_fails_when_the_new_answer_is_shorter() -> None:
    core = ResumeCore(Resume(mode="restart"), messages=MESSAGES, params={})
    core.feed([TextDelta(0, "Hello wor")])
    continue_(core.decide(CUT))
    assert core.feed([TextDelta(0, "Hello"), Finish(0, "stop", None)]) == []
    assert isinstance(core.pending, ContinuationError)


def test_held_seam_text_is_delivered_before_the_finish() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    core.feed([TextDelta(0, "abcdef")])
    continue_(core.decide(CUT))
    assert core.feed([TextDelta(0, "de")]) == []
    assert core.feed([Finish(0, "stop", None)]) == [TextDelta(0, "de"), Finish(0, "stop", None)]


def test_other_events_pass_while_text_is_held() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    core.feed([TextDelta(0, "abcdef")])
    continue_(core.decide(CUT))
    extra = Extra(0, {"logprobs": {"content": []}}, "choice")
    assert core.feed([TextDelta(0, "de"), extra, KeepAlive("k")]) == [extra, KeepAlive("k")]
    assert core.feed([TextDelta(0, "fgh")]) == [TextDelta(0, "gh")]


# -- metrics ----------------------------------------------------------------------------


def test_join_metrics() -> None:
    one = StreamMetrics(
        ttft=0.5,
        total=1.0,
        attempts=1,
        ttfb=0.1,
        status="truncated",
        model="m",
        content_events=3,
        events=5,
        bytes_received=100,
        cost=0.25,
        completion_tokens=5,
        gap_max=0.2,
    )
    two = StreamMetrics(
        ttft=0.3,
        total=2.5,
        attempts=2,
        ttfb=0.05,
        status="complete",
        model="m",
        content_events=2,
        events=4,
        bytes_received=60,
        cost=0.5,
        completion_tokens=3,
        gap_max=0.4,
    )
    joined = join_metrics([one, two])
    assert (joined.ttft, joined.ttfb, joined.total) == (0.5, 0.1, 2.5)
    assert (joined.attempts, joined.status, joined.content_events) == (3, "complete", 5)
    assert (joined.events, joined.bytes_received, joined.cost) == (9, 160, 0.75)
    assert (joined.completion_tokens, joined.gap_max) == (8, 0.4)
    assert join_metrics([one]) is one


def test_a_refusal_is_replayed_like_text() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    core.feed([RefusalDelta(0, "I can")])
    assert continue_(core.decide(CUT)).messages == MESSAGES
    assert core.feed([RefusalDelta(0, "I can't help.")]) == [RefusalDelta(0, "'t help.")]
    assert core.result().choices[0].refusal == "I can't help."


def test_a_replay_that_ends_short_at_the_clean_end_is_an_error() -> None:
    core = ResumeCore(Resume(mode="restart"), messages=MESSAGES, params={})
    core.feed([TextDelta(0, "Hello wor")])
    continue_(core.decide(CUT))
    assert core.feed([TextDelta(0, "Hello"), Done()]) == []
    assert core.end_part() == []
    assert isinstance(core.pending, ContinuationError)


def test_held_seam_text_is_delivered_at_the_clean_end() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    core.feed([TextDelta(0, "abcdef")])
    continue_(core.decide(CUT))
    assert core.feed([TextDelta(0, "de"), Done()]) == []
    assert core.end_part() == [TextDelta(0, "de")]


def test_a_later_finish_settles_a_held_length() -> None:
    core = ResumeCore(Resume(length=True), messages=MESSAGES, params={})
    assert core.feed([TextDelta(0, "a"), Finish(0, "length", None)]) == [TextDelta(0, "a")]
    assert core.feed([Finish(0, "stop", None), Done()]) == [Finish(0, "stop", None)]
    core.end_part()
    assert stop(core.decide(None)) == Stop(None, [Done()])


def test_the_result_so_far_counts_the_usage_of_the_open_request() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    core.feed([TextDelta(0, "a"), USAGE1])
    continue_(core.decide(CUT))
    core.feed([TextDelta(0, "b"), USAGE2])
    usage = core.result().usage
    assert usage is not None
    assert usage.cost == 0.75
    assert core.delivered() == "ab"


def test_events_of_other_choices_in_a_continuation_are_ignored() -> None:
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    core.feed([TextDelta(0, "abc")])
    continue_(core.decide(CUT))
    error = error_event(400, "invalid_request")
    other: list[ChatEvent] = [
        Extra(1, {"logprobs": []}, "choice"),
        InBandError(1, 400, "m", None, {}),
        ToolCallDelta(1, 0, "c", "f", ""),
        Finish(1, "stop", None),
        RoleDelta(1, "assistant"),
        ReasoningDelta(1, "r"),
        RefusalDelta(1, "no"),
    ]
    assert core.feed([*other, Extra(None, {"service_tier": "x"}, "chunk"), error]) == [
        Extra(None, {"service_tier": "x"}, "chunk"),
        error,
    ]
