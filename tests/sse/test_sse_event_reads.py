"""One event per read, as a live stream arrives: each read decodes as the whole stream does,
whatever the reads before it left pending (a field, an id, a retry, half a line, a BOM, a CR)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawsse import Comment, ServerSentEvent, SSEDecoder, SSEProtocolError

Item = ServerSentEvent | Comment

READS = [
    b'data: {"a":1}\n\n',
    b"data: caf\xc3\xa9\n\n",
    b"data: \xff broken\n\n",
    b"data:\n\n",
    b"data: [DONE]\n\n",
    b": keep-alive\n\n",
    b"event: named\n",
    b"id: 7\n",
    b"id: 8\n\n",
    b"retry: 250\n",
    b"data: first line\n",
    b"data: half",
    b"data: ends in CR\r",
    b"\n",
    b"\xef\xbb\xbf",
    b"\xef\xbb",
    b"data: two\n\ndata: reads\n\n",
]


def decode(reads: list[bytes], **limits: int) -> list[Item]:
    decoder = SSEDecoder(**limits)
    out: list[Item] = []
    for data in reads:
        out += decoder.feed(data)
    return out


@given(st.lists(st.sampled_from(READS), max_size=12))
def test_reads_of_one_event_decode_as_the_whole_stream(reads: list[bytes]) -> None:
    assert decode(reads) == decode([b"".join(reads)])


def test_a_lone_event_read_dispatches_with_the_id_in_force() -> None:
    reads = [b"id: 5\n\n", b"data: x\n\n", b"data: y\n\n"]
    assert decode(reads) == [
        ServerSentEvent("message", "x", "5", None),
        ServerSentEvent("message", "y", "5", None),
    ]


def test_a_lone_event_read_after_a_field_belongs_to_that_event() -> None:
    reads = [b"event: tool\n", b"data: x\n\n", b"data: y\n\n"]
    assert decode(reads) == [
        ServerSentEvent("tool", "x", "", None),
        ServerSentEvent("message", "y", "", None),
    ]


def test_a_lone_event_read_longer_than_a_line_may_be_is_refused() -> None:
    decoder = SSEDecoder(max_line_bytes=8)
    with pytest.raises(SSEProtocolError, match="max_line_bytes=8") as caught:
        decoder.feed(b"data: 0123456789\n\n")
    assert caught.value.events == []
