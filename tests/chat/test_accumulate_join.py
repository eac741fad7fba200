"""The accumulator joins a choice's content ``JOIN_EVERY`` fragments at a time: every
result, at any moment, is still the exact text, and the fragments held stay few."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rawsse import ChatAccumulator, TextDelta
from rawsse._accumulate import JOIN_EVERY

# (choice, text, take a result after it): results now and then, long runs without
looks = st.sampled_from([False] * 20 + [True])
steps = st.lists(st.tuples(st.integers(0, 1), st.text(max_size=5), looks), max_size=4 * JOIN_EVERY)


@given(steps)
def test_results_are_exact_at_every_moment(script: list[tuple[int, str, bool]]) -> None:
    acc = ChatAccumulator()
    texts = {0: "", 1: ""}
    for choice, text, look in script:
        acc.add(TextDelta(choice, text))
        texts[choice] += text
        if look:
            assert [c.content for c in acc.result().choices] == [
                texts[c.index] for c in acc.result().choices
            ]
    result = acc.result()
    assert {c.index: c.content for c in result.choices} == {
        i: t for i, t in texts.items() if any(c == i for c, _, _ in script)
    }


def test_a_long_answer_holds_few_fragments() -> None:
    acc = ChatAccumulator()
    for i in range(10 * JOIN_EVERY + 3):
        acc.add(TextDelta(0, f"t{i} "))
    choice = acc._choices[0]
    assert len(choice.content) == 3  # the latest fragments
    assert len(choice.content_pieces) == 10  # one string per JOIN_EVERY before them
    assert acc.result().text == "".join(f"t{i} " for i in range(10 * JOIN_EVERY + 3))
    acc.add(TextDelta(0, "end"))
    assert acc.result().text.endswith("t642 end")
    assert len(choice.content_pieces) == 1  # the result's join is kept, and not copied again
