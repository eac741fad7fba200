"""The relay's per-event path: a text or reasoning delta is sent as exactly the JSON the
schema gives, whatever its characters, and one upstream read leaves as one write."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from rawsse import ReasoningDelta, TextDelta
from rawsse.relay import RelayEncoder

TRICKY = ["plain", 'a "quoted" word', "back\\slash", "line\nbreak\r\t", "\x00\x1f\x7f", "é ü ß",
          "\u2028\u2029", "日本語", "🙂 astral", "</script>", ""]  # fmt: skip


def event(event_id: int, name: str, choice: int, text: str) -> bytes:
    data = json.dumps({"choice": choice, "text": text}, ensure_ascii=False, separators=(",", ":"))
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, name.encode(), data.encode())


def opened() -> RelayEncoder:
    encoder = RelayEncoder(0.0, stream_id="s", heartbeat=None)
    encoder.feed_many([TextDelta(0, "x")], 0.0)  # the opening comment, start and one text
    return encoder


@given(st.sampled_from(TRICKY) | st.text(), st.integers(0, 12))
def test_a_text_delta_is_one_event_with_its_text_as_json(text: str, choice: int) -> None:
    encoder = opened()
    assert encoder.feed_many([TextDelta(choice, text)], 1.0) == event(3, "text", choice, text)


@given(st.sampled_from(TRICKY) | st.text(), st.integers(0, 12))
def test_a_reasoning_delta_is_one_event_with_its_text_as_json(text: str, choice: int) -> None:
    encoder = opened()
    got = encoder.feed_many([ReasoningDelta(choice, text)], 1.0)
    assert got == event(3, "reasoning", choice, text)


def test_the_deltas_of_one_read_leave_as_one_write_in_order() -> None:
    encoder = opened()
    events = [TextDelta(0, "a"), ReasoningDelta(1, "b"), TextDelta(0, "c")]
    assert encoder.feed_many(events, 1.0) == (
        event(3, "text", 0, "a") + event(4, "reasoning", 1, "b") + event(5, "text", 0, "c")
    )


def test_reasoning_details_travel_in_the_extras_of_their_own_event() -> None:
    encoder = opened()
    details = ({"type": "reasoning.text", "text": "b", "index": 0},)
    got = encoder.feed_many([ReasoningDelta(0, "b", details)], 1.0)
    head, _, data = got.partition(b"data: ")
    assert head == b"id: 3\nevent: reasoning\n"
    assert json.loads(data) == {
        "choice": 0,
        "text": "b",
        "extras": {"choices": {"0": {"reasoning_details": [list(details)]}}},
    }


def test_a_read_with_nothing_to_send_writes_nothing() -> None:
    encoder = opened()
    assert encoder.feed_many([], 1.0) == b""
