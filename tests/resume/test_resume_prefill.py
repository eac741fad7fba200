"""The fixture server's recording transforms: prefill continuations and resume faults."""

from __future__ import annotations

import pytest

from rawsse import ChatStatus, Finish, InBandError, TextDelta, accumulate, parse_chat_stream
from rawsse._cassette import Cassette
from rawsse._server._prefill import Seam, continue_cassette, error_at, prefill_of, stop_at_length

from ..conftest import FIXTURES

TEXT_FIXTURES = [
    "plain_text.sse",
    "multibyte_split.sse",
    "n2_choices.sse",
    "reasoning_content.sse",
    "reasoning_text_signature.sse",
    "keepalives_between.sse",
    "unicode_separators.sse",
]


def cassette(name: str) -> Cassette:
    return Cassette.from_body((FIXTURES / name).read_bytes())


def answers(c: Cassette) -> dict[int, str]:
    result = accumulate(parse_chat_stream(c.body))
    return {choice.index: choice.content for choice in result.choices}


@pytest.mark.parametrize("name", TEXT_FIXTURES)
def test_every_prefill_continues_with_exactly_the_rest(name: str) -> None:
    original = cassette(name)
    for index, answer in answers(original).items():
        for cut in range(1, len(answer) + 1):
            prefill = answer[:cut]
            if any(a.startswith(prefill) for i, a in answers(original).items() if i < index):
                continue  # an earlier choice starts the same way: it is the one continued
            continued = continue_cassette(original, prefill)
            assert continued is not None
            events = parse_chat_stream(continued.body)
            result = accumulate(events)
            assert [c.index for c in result.choices] == [0], (name, cut)
            assert prefill + result.choices[0].content == answer, (name, cut)
            assert result.status is ChatStatus.COMPLETE
            assert result.choices[0].reasoning == ""  # thought before the text: not again
            assert result.choices[0].finish_reason == "stop"


def test_a_prefill_that_starts_no_answer_gives_none() -> None:
    assert continue_cassette(cassette("plain_text.sse"), "Nothing like it") is None


@pytest.mark.parametrize("repeat", [1, 3, 8])
def test_seam_repeat(repeat: int) -> None:
    original = cassette("plain_text.sse")
    answer = answers(original)[0]
    prefill = answer[:20]
    continued = continue_cassette(original, prefill, Seam(repeat=repeat))
    assert continued is not None
    text = answers(continued)[0]
    assert text == prefill[-repeat:] + answer[20:]


def test_seam_trim_drops_one_leading_space() -> None:
    original = cassette("plain_text.sse")
    answer = answers(original)[0]
    cut = answer.index(" ", 5)
    continued = continue_cassette(original, answer[:cut], Seam(trim=True))
    assert continued is not None
    assert answers(continued)[0] == answer[cut + 1 :]
    continued = continue_cassette(original, answer[: cut + 1], Seam(trim=True))
    assert continued is not None
    assert answers(continued)[0] == answer[cut + 1 :]  # no space to trim


def test_the_continuation_starts_at_the_first_token_time() -> None:
    original = Cassette.from_body(
        [
            b": x\n\n",
            b'data: {"choices":[{"index":0,"delta":{"content":"ab"}}]}\n\n',
            b'data: {"choices":[{"index":0,"delta":{"content":"cd"}}]}\n\n',
            b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
            b"data: [DONE]\n\n",
        ],
        interval=1.0,
    )
    continued = continue_cassette(original, "abc")
    assert continued is not None
    assert [t for t, _ in continued.chunks] == [1.0, 2.0, 2.0]
    assert parse_chat_stream(continued.body)[0] == TextDelta(0, "d")


@pytest.mark.parametrize(
    ("text", "seam"),
    [("", Seam()), ("none", Seam()), ("trim", Seam(trim=True)), ("Repeat:3", Seam(repeat=3))],
)
def test_seam_parse(text: str, seam: Seam) -> None:
    assert Seam.parse(text) == seam
    assert Seam.parse(str(seam)) == seam


@pytest.mark.parametrize("text", ["repeat", "repeat:0", "repeat:x", "cut"])
def test_seam_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="seam quirk"):
        Seam.parse(text)


@pytest.mark.parametrize(
    ("body", "prefill"),
    [
        ({"messages": [{"role": "user", "content": "q"}]}, None),
        ({"messages": [{"role": "assistant", "content": "So"}]}, "So"),
        ({"messages": [{"role": "assistant", "content": ""}]}, None),
        ({"messages": [{"role": "assistant", "content": [{"type": "text", "text": "A"}]}]}, "A"),
        ({"messages": []}, None),
        ({}, None),
        ([], None),
    ],
)
def test_prefill_of(body: object, prefill: str | None) -> None:
    assert prefill_of(body) == prefill


def test_stop_at_length() -> None:
    original = cassette("plain_text.sse")
    events = parse_chat_stream(stop_at_length(original, 3).body)
    deltas = [e for e in events if type(e) is TextDelta]
    assert len(deltas) == 3
    finishes = [e for e in events if type(e) is Finish]
    assert finishes == [Finish(0, "length", "length")]
    assert accumulate(events).status is ChatStatus.COMPLETE
    assert (
        accumulate(parse_chat_stream(stop_at_length(original, 10_000).body)).text
        == (answers(original)[0])
    )


def test_error_at() -> None:
    original = cassette("plain_text.sse")
    events = parse_chat_stream(error_at(original, 1500, 503).body)
    errors = [e for e in events if type(e) is InBandError]
    assert [(e.code, e.metadata) for e in errors] == [(503, {"error_type": "provider_unavailable"})]
    text = accumulate(events).text
    assert text
    assert answers(original)[0].startswith(text)
    assert answers(original)[0] != text
