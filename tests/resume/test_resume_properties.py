"""Property tests of resuming: random answers, cut points, seam quirks and chunkings.

A simulated provider continues a recorded answer from the prefill it is sent
(or sends the whole answer again when there is none), optionally with a seam
quirk: repeating the last characters of the prefill, or trimming a leading
space.  Whatever the chunking, the joined text must equal the answer, except in
the documented cases the joiner cannot tell apart, where it must lose characters
rather than deliver any twice.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from rawsse import ChatStatus, Done, Finish, TextDelta, Usage
from rawsse._chat_events import Continued
from rawsse._errors import IncompleteStreamError
from rawsse._resume import Continue, Resume, ResumeCore, Stop

MAX_OVERLAP = 32
USAGE = Usage(1, 1, 2, None, None, 0.5, {"total_tokens": 2})
MESSAGES = [{"role": "user", "content": "go"}]

# Few characters, so repeats and whitespace at the seam are common.
answers = st.text(alphabet="ab .\n\u00e9\u6771\U0001f44d", min_size=1, max_size=100)


@dataclass(frozen=True)
class Quirk:
    repeat: int = 0
    """Repeat the last ``repeat`` characters of the prefill."""
    trim: bool = False
    """Drop one leading space of the continuation."""

    def apply(self, prefill: str, rest: str) -> str:
        if self.trim:
            return rest[1:] if rest.startswith(" ") else rest
        return prefill[len(prefill) - self.repeat :] + rest if self.repeat else rest


quirks = st.one_of(
    st.just(Quirk()),
    st.builds(Quirk, repeat=st.integers(1, 8)),
    st.just(Quirk(trim=True)),
)


def chunked(text: str, data: st.DataObject) -> list[str]:
    """``text`` split into non-empty pieces at random places."""
    if not text:
        return []
    marks = data.draw(st.sets(st.integers(1, len(text) - 1)) if len(text) > 1 else st.just(set()))
    bounds = [0, *sorted(marks), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def longest_overlap(delivered: str, new: str) -> int:
    """The reference rule: the longest suffix of ``delivered`` (at most 32
    characters) that ``new`` starts with."""
    for k in range(min(MAX_OVERLAP, len(delivered)), 0, -1):
        if new.startswith(delivered[len(delivered) - k :]):
            return k
    return 0


def still_open(delivered: str, new: str) -> bool:
    """Whether a longer repeat is still possible after ``new`` (the joiner holds)."""
    tail = delivered[max(len(delivered) - MAX_OVERLAP, 0) :]
    return any(tail[len(tail) - k :].startswith(new) for k in range(len(new) + 1, len(tail) + 1))


@settings(max_examples=400, deadline=None)
@given(answer=answers, quirk=quirks, data=st.data())
def test_random_cuts_quirks_and_chunkings_join_to_the_answer(
    answer: str, quirk: Quirk, data: st.DataObject
) -> None:
    cuts = data.draw(st.integers(1, 3), label="cuts")
    core = ResumeCore(Resume(max_continuations=3), messages=MESSAGES, params={})
    out: list[object] = []
    expected = ""  # what the reference rule delivers
    exact = True  # every seam removed exactly the repeat: the answer comes out whole
    sent = answer  # the first request has no prefill
    prefill: str | None = None
    true_repeat = 0
    seams = 0
    while True:
        pieces = chunked(sent, data)
        cut = seams < cuts
        taken = data.draw(st.integers(0, len(pieces)), label="cut at") if cut else len(pieces)
        out += core.feed([TextDelta(0, p) for p in pieces[:taken]])
        received = "".join(pieces[:taken])
        # The reference: what this part adds to what was delivered before it.
        if seams == 0:
            expected = received
        elif prefill is None:  # a regeneration: the reproduced text is dropped
            if received.startswith(expected):
                expected = received
            else:
                assert expected.startswith(received)
        elif not cut or not still_open(expected, received):
            k = longest_overlap(expected, sent)
            if k != true_repeat:
                # A documented case: a dropped space, or new text that looks like a
                # repeat.  No provider could continue the joined text from here, so
                # this part is not cut.
                exact = False
                if cut:
                    out += core.feed([TextDelta(0, p) for p in pieces[taken:]])
                    cut = False
            expected += sent[k:] if not cut else received[k:]
        if not cut:
            out += core.feed([Finish(0, "stop", "stop"), USAGE, Done()])
            out += core.end_part()
            decision = core.decide(None)
            assert isinstance(decision, Stop)
            assert decision.error is None
            out += decision.events
            break
        decision = core.decide(IncompleteStreamError("cut"))
        assert isinstance(decision, Continue)
        out.append(decision.event)
        seams += 1
        tail = decision.messages[-1]
        prefill = tail["content"] if tail["role"] == "assistant" else None
        if prefill is None:  # nothing but whitespace delivered: the request again
            assert not expected.strip()
            sent = answer
            continue
        assert prefill == expected.rstrip()
        assert answer.startswith(prefill)
        sent = quirk.apply(prefill, answer[len(prefill) :])
        true_repeat = len(sent) - len(answer) + len(expected)  # characters sent again
        assume(true_repeat <= MAX_OVERLAP)

    text = "".join(e.text for e in out if type(e) is TextDelta)
    assert text == expected
    assert core.result().text == text
    assert core.result().status is ChatStatus.COMPLETE
    assert sum(type(e) is Continued for e in out) == seams
    event(f"seams={seams} exact={exact}")
    if exact:
        assert text == answer
    else:
        assert len(text) < len(answer)  # characters lost, never one delivered twice


@settings(max_examples=200, deadline=None)
@given(answer=answers, repeat=st.integers(0, 8), data=st.data())
def test_a_repeat_of_the_seam_is_never_delivered(
    answer: str, repeat: int, data: st.DataObject
) -> None:
    """With text that has no character twice, every repeat is detected exactly."""
    answer = "".join(dict.fromkeys(answer))  # each character once
    assume(answer.strip())
    cut = data.draw(st.integers(1, len(answer)))
    delivered = answer[:cut]
    assume(delivered.strip())
    core = ResumeCore(Resume(), messages=MESSAGES, params={})
    core.feed([TextDelta(0, p) for p in chunked(delivered, data)])
    decision = core.decide(IncompleteStreamError("cut"))
    assert isinstance(decision, Continue)
    prefill = decision.messages[-1]["content"]
    sent = Quirk(repeat=min(repeat, len(prefill))).apply(prefill, answer[len(prefill) :])
    out = core.feed([TextDelta(0, p) for p in chunked(sent, data)])
    out += core.feed([Finish(0, "stop", None)])
    assert delivered + "".join(e.text for e in out if type(e) is TextDelta) == answer
