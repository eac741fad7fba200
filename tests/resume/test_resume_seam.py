"""The seam joiners: overlap after a prefill, replay after a regeneration."""

from __future__ import annotations

import pytest

from rawsse._seam import OverlapJoiner, ReplayJoiner


def feed_all(joiner: OverlapJoiner | ReplayJoiner, pieces: list[str]) -> list[str]:
    """What each piece delivers, then what ``close`` delivers."""
    return [joiner.feed(piece) for piece in pieces] + [joiner.close()]


# -- overlap ------------------------------------------------------------------


def test_no_overlap_is_delivered_at_once() -> None:
    joiner = OverlapJoiner("Hello wor")
    assert joiner.feed("ld") == "ld"  # "l" is no suffix of "Hello wor": nothing to hold
    assert joiner.overlap == 0
    assert joiner.feed(", hi") == ", hi"


def test_repeat_of_the_last_characters_in_one_delta() -> None:
    assert feed_all(OverlapJoiner("Hello wor"), ["world!"]) == ["ld!", ""]


def test_repeat_across_several_deltas_holds_only_while_a_repeat_is_possible() -> None:
    joiner = OverlapJoiner("The quick brown fox")
    assert joiner.feed("bro") == ""  # could still be "brown fox"
    assert joiner.held == "bro"
    assert joiner.feed("wn f") == ""
    assert joiner.feed("o") == ""
    assert joiner.feed("x jumps") == " jumps"
    assert joiner.overlap == len("brown fox")
    assert joiner.feed(" over") == " over"


def test_a_partial_repeat_that_breaks_off_is_new_text() -> None:
    joiner = OverlapJoiner("The quick brown fox")
    assert joiner.feed("bro") == ""
    assert joiner.feed("ke") == "broke"  # "brok" is not a suffix: all of it is new
    assert joiner.overlap == 0


def test_the_longest_overlap_wins() -> None:
    # "a" and "aba" are both suffixes of "xaba"; the new text repeats "aba".
    assert feed_all(OverlapJoiner("xaba"), ["ab", "a", "c"]) == ["", "", "c", ""]


def test_a_shorter_overlap_is_taken_when_the_longer_one_breaks_off() -> None:
    joiner = OverlapJoiner("xaba")
    assert joiner.feed("a") == ""  # "a" (k=1) confirmed, "aba" (k=3) still possible
    assert joiner.feed("c") == "c"
    assert joiner.overlap == 1


def test_regenerated_whitespace_after_a_stripped_prefill_is_dropped() -> None:
    # Delivered "Hello ", prefill "Hello": the model writes the space again.
    assert feed_all(OverlapJoiner("Hello "), [" world"]) == ["world", ""]


def test_a_trimmed_leading_space_after_delivered_whitespace_joins_cleanly() -> None:
    assert feed_all(OverlapJoiner("Hello "), ["world"]) == ["world", ""]


def test_a_dropped_space_after_a_word_cannot_be_detected() -> None:
    # Documented: "Hello" + "world" looks like one word going on.
    assert feed_all(OverlapJoiner("Hello"), ["world"]) == ["world", ""]


def test_close_decides_with_what_was_sent() -> None:
    joiner = OverlapJoiner("abcdef")
    assert joiner.feed("de") == ""  # could be "def..."
    assert joiner.close() == "de"  # "def" never came, and no suffix of "abcdef" is "de"
    assert joiner.overlap == 0
    joiner = OverlapJoiner("abcdef")
    assert joiner.feed("ef") == ""
    assert joiner.close() == ""
    assert joiner.overlap == 2


def test_at_most_max_overlap_characters() -> None:
    delivered = "".join(chr(0x4E00 + i) for i in range(40))  # no character twice
    assert feed_all(OverlapJoiner(delivered), [delivered[-32:] + "!"]) == ["!", ""]
    too_long = delivered[-33:] + "!"
    assert feed_all(OverlapJoiner(delivered), [too_long]) == [too_long, ""]
    assert OverlapJoiner("abc", max_overlap=0).feed("c") == "c"


@pytest.mark.parametrize("size", [1, 16, 31, 32, 33, 40])
def test_a_repeat_of_a_short_delivered_text(size: int) -> None:
    delivered = "".join(chr(0x4E00 + i) for i in range(size))
    repeat = delivered[-min(size, 32) :]
    assert feed_all(OverlapJoiner(delivered), [repeat[:2], repeat[2:] + "!"]) == ["", "!", ""]


def test_multibyte_characters_are_single_characters() -> None:
    assert feed_all(OverlapJoiner("東京の天"), ["の", "天気は"]) == ["", "気は", ""]
    assert feed_all(OverlapJoiner("ok 👍🏽"), ["🏽", " done"]) == ["", " done", ""]


@pytest.mark.parametrize("split", range(1, 9))
def test_every_split_of_a_repeat_gives_the_same_text(split: int) -> None:
    new = "brown fox jumps"
    out = feed_all(OverlapJoiner("The quick brown"), [new[:split], new[split:]])
    assert "".join(out) == " fox jumps"


# -- replay -------------------------------------------------------------------


def test_replay_drops_the_reproduced_text_and_delivers_the_rest() -> None:
    joiner = ReplayJoiner("Hello wor")
    assert feed_all(joiner, ["Hel", "lo w", "orld", "!"]) == ["", "", "ld", "!", ""]
    assert joiner.passed
    assert not joiner.diverged


def test_replay_divergence_delivers_nothing_when_strict() -> None:
    joiner = ReplayJoiner("Hello wor")
    assert joiner.feed("Hello the") == ""
    assert joiner.diverged
    assert joiner.feed("re") == ""


def test_replay_divergence_keeps_the_new_block_when_asked() -> None:
    joiner = ReplayJoiner("Think A", keep_on_divergence=True)
    assert joiner.feed("Thin") == ""
    assert joiner.held == "Thin"
    assert joiner.feed("g B") == "Thing B"
    assert joiner.feed(" more") == " more"


def test_replay_that_ends_short_is_a_divergence_only_when_strict() -> None:
    strict = ReplayJoiner("Hello")
    assert feed_all(strict, ["Hel"]) == ["", ""]
    assert strict.diverged
    kept = ReplayJoiner("Hello", keep_on_divergence=True)
    assert feed_all(kept, ["Hel"]) == ["", ""]  # adds nothing: dropped
    assert not kept.diverged


def test_replay_of_nothing_passes_everything() -> None:
    assert ReplayJoiner("").feed("abc") == "abc"
