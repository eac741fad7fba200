from __future__ import annotations

import copy
import itertools
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawsse import (
    Comment,
    RawSSEError,
    ServerSentEvent,
    SSEDecoder,
    SSEProtocolError,
    encode_comment,
    encode_event,
)
from tests.conftest import corpus_params, fixture_files
from tests.helpers import SSE_PIECES, byte_at_a_time, every_split, fixed_size, whole

Item = ServerSentEvent | Comment

VECTORS = json.loads((Path(__file__).parent.parent / "data" / "sse_vectors.json").read_text())[
    "vectors"
]


def decode(chunks: list[bytes], **limits: int) -> list[Item]:
    decoder = SSEDecoder(**limits)
    out: list[Item] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    out += decoder.close()
    return out


def expected(vector: dict[str, Any]) -> list[Item]:
    items: list[Item] = []
    for e in vector["events"]:
        if "comment" in e:
            items.append(Comment(e["comment"]))
        else:
            items.append(ServerSentEvent(e["event"], e["data"], e["id"], e["retry"]))
    return items


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_whole_split_and_bytewise(vector: dict[str, Any]) -> None:
    data = vector["input"].encode("latin-1")
    want = expected(vector)
    assert decode(whole(data)) == want
    assert decode(byte_at_a_time(data)) == want
    for chunks in every_split(data):
        assert decode(chunks) == want, chunks


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    # Without remembering the CR, the LF would be a blank line and dispatch early.
    assert decode([b"data: a\r", b"\ndata: b\r\n\r\n"]) == [ServerSentEvent(data="a\nb")]
    assert decode([b"data: a\r", b"\n", b"\r", b"\n"]) == [ServerSentEvent(data="a")]


def test_lone_cr_then_lf_in_a_later_chunk() -> None:
    # CR ends "data: a"; the next chunk's LF is its pair; the following CR is a blank line.
    assert decode([b"data: a\r", b"\n\r"]) == [ServerSentEvent(data="a")]


def test_multibyte_character_split_across_chunks_decodes_whole() -> None:
    data = "data: 你好 🌍\n\n".encode()
    for chunks in every_split(data):
        assert decode(chunks) == [ServerSentEvent(data="你好 🌍")]


def test_bom_split_across_first_chunks() -> None:
    assert decode([b"\xef", b"\xbb", b"\xbfdata: x\n\n"]) == [ServerSentEvent(data="x")]
    # Not a BOM after all: the bytes become U+FFFD and the field "\ufffddata" is unknown.
    assert decode([b"\xef\xbb", b"data: x\n\n"]) == []
    assert decode([b"\xef\xbb", b"\n: c\n\n"]) == [Comment("c")]


def test_bom_at_start_of_a_later_chunk_is_kept() -> None:
    # "\ufeffdata" is an unknown field: nothing dispatched from the second block.
    assert decode([b"data: 1\n\n", b"\xef\xbb\xbfdata: 2\n\n"]) == [ServerSentEvent(data="1")]


def test_decoder_attributes_follow_dispatch() -> None:
    decoder = SSEDecoder()
    assert decoder.last_event_id == ""
    assert decoder.retry is None
    assert decoder.feed(b"id: 5\nretry: 250\ndata: x\n\n") == [
        ServerSentEvent("message", "x", "5", 250)
    ]
    assert decoder.last_event_id == "5"
    assert decoder.retry == 250
    # An id in a block that never completes does not move the last event ID.
    assert decoder.feed(b"id: 6\ndata: y\n") == []
    assert decoder.close() == []
    assert decoder.last_event_id == "5"


def test_close_readies_a_new_stream_keeping_reconnection_state() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"id: 7\nretry: 9\ndata: a\n\nevent: x\ndata: partial")
    decoder.close()
    # Fresh buffers (no leftover event type or data), same last event ID and retry.
    assert decoder.feed(b"\xef\xbb\xbfdata: b\n\n") == [ServerSentEvent("message", "b", "7", None)]
    assert decoder.retry == 9


def test_feed_empty_is_a_no_op() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"") == []
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n") == [ServerSentEvent(data="a")]


def test_line_longer_than_bound_raises_and_decoder_refuses_more() -> None:
    decoder = SSEDecoder(max_line_bytes=10)
    assert decoder.feed(b"data: 1234") == []
    with pytest.raises(SSEProtocolError, match="max_line_bytes=10"):
        decoder.feed(b"5")
    with pytest.raises(SSEProtocolError, match="failed earlier"):
        decoder.feed(b"\n\n")
    with pytest.raises(SSEProtocolError):
        decoder.close()


def test_line_bound_inside_one_large_feed() -> None:
    with pytest.raises(SSEProtocolError, match="line of 16 bytes"):
        decode([b"data: a\n\ndata: 0123456789\n\n"], max_line_bytes=15)
    # Exactly at the bound is fine (the terminator does not count).
    assert decode([b"data: 012345678\n\n"], max_line_bytes=15) == [
        ServerSentEvent(data="012345678")
    ]


def test_event_bound_counts_utf8_bytes_exactly() -> None:
    # The data buffer is each value plus LF: "éééé" + LF is 9 bytes.
    assert decode(["data: éééé\n\n".encode()], max_event_bytes=9) == [ServerSentEvent(data="éééé")]
    with pytest.raises(SSEProtocolError, match="max_event_bytes=9"):
        decode(["data: ééééé\n\n".encode()], max_event_bytes=9)


def test_endless_data_lines_without_blank_line_hit_the_event_bound() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)

    def feed_forever() -> None:
        for _ in range(1000):
            decoder.feed(b"data: 0123456789\n")

    with pytest.raises(SSEProtocolError, match="no blank line"):
        feed_forever()


def test_bare_data_lines_count_toward_the_event_bound() -> None:
    with pytest.raises(SSEProtocolError):
        decode([b"data\n" * 100], max_event_bytes=50)


def test_event_bound_resets_after_each_dispatch() -> None:
    data = b"data: 0123456789\n\n" * 500
    assert len(decode([data], max_event_bytes=11)) == 500


def test_huge_single_line_in_small_chunks_is_linear() -> None:
    # 16 MiB in 1 KiB chunks: a decoder that rescans or re-joins its buffer per
    # chunk would do ~128 GiB of copying here and never finish.
    size = 16 * 1024 * 1024
    decoder = SSEDecoder(max_line_bytes=size + 16, max_event_bytes=size + 16)
    piece = b"x" * 1024
    assert decoder.feed(b"data: ") == []
    for _ in range(size // 1024):
        decoder.feed(piece)
    (event,) = decoder.feed(b"\n\n")
    assert isinstance(event, ServerSentEvent)
    assert len(event.data) == size


def test_default_bounds_fit_real_streams() -> None:
    decoder = SSEDecoder()
    assert decoder.max_line_bytes >= 16 * 1024 * 1024
    assert decoder.max_event_bytes >= decoder.max_line_bytes


def test_invalid_bounds_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        SSEDecoder(max_line_bytes=0)


# -- records ---------------------------------------------------------------


def test_events_are_immutable_values() -> None:
    event = ServerSentEvent("message", "x", "1", None)
    assert event == ServerSentEvent(data="x", id="1")
    assert hash(event) == hash(ServerSentEvent(data="x", id="1"))
    assert event != ServerSentEvent(data="y", id="1")
    assert event != ("message", "x", "1", None)
    assert Comment("x") != ServerSentEvent(data="x")
    assert Comment("x") != ("x",)
    with pytest.raises(AttributeError):
        event.data = "y"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        event.extra = 1  # type: ignore[attr-defined]
    assert not hasattr(event, "__dict__")
    assert repr(event) == "ServerSentEvent(event='message', data='x', id='1', retry=None)"
    assert pickle.loads(pickle.dumps(event)) == event
    assert copy.copy(event) is event
    assert event._replace(data="z") == ServerSentEvent(data="z", id="1")


def test_events_support_match() -> None:
    match Comment("OPENROUTER PROCESSING"):
        case Comment(text):
            assert text == "OPENROUTER PROCESSING"
        case _:  # pragma: no cover
            pytest.fail("no match")


# -- encoder -----------------------------------------------------------------


def test_encode_event_fields() -> None:
    assert encode_event("x") == b"data: x\n\n"
    assert encode_event("a\nb", event="e", id="7", retry=1000) == (
        b"event: e\nid: 7\nretry: 1000\ndata: a\ndata: b\n\n"
    )
    assert encode_event("") == b"data:\n\n"
    assert encode_event("", event="", id="") == b"event\nid\ndata:\n\n"
    assert encode_comment("OPENROUTER PROCESSING") == b": OPENROUTER PROCESSING\n\n"
    assert encode_comment("") == b":\n\n"


def test_encode_cr_and_crlf_in_data_come_back_as_lf() -> None:
    assert decode([encode_event("a\r\nb\rc")]) == [ServerSentEvent(data="a\nb\nc")]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"event": "a\nb"}, "event"),
        ({"event": "a\rb"}, "event"),
        ({"event": "a\0b"}, "event"),
        ({"id": "a\nb"}, "id"),
        ({"id": "a\0b"}, "id"),
        ({"retry": -1}, "retry"),
        ({"retry": True}, "retry"),
    ],
)
def test_encode_event_rejects_what_the_format_cannot_carry(
    kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        encode_event("x", **kwargs)


@pytest.mark.parametrize("text", ["a\nb", "a\rb"])
def test_encode_comment_rejects_line_ends(text: str) -> None:
    with pytest.raises(ValueError, match="comment"):
        encode_comment(text)


# -- hypothesis ----------------------------------------------------------------

_PIECES = st.sampled_from(SSE_PIECES)
streams = st.lists(_PIECES | st.binary(max_size=4), max_size=40).map(b"".join)


@st.composite
def chunkings(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    data = draw(streams)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    bounds = [0, *cuts, len(data)]
    return data, [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(chunkings())
def test_any_chunking_gives_the_same_events(case: tuple[bytes, list[bytes]]) -> None:
    data, chunks = case
    assert decode(chunks) == decode([data])


@settings(max_examples=300)
@given(st.binary(max_size=200), st.integers(1, 40), st.integers(1, 40))
def test_decoder_raises_only_its_own_error(data: bytes, line: int, event: int) -> None:
    try:
        items = decode(
            fixed_size(data, 7) if data else [], max_line_bytes=line, max_event_bytes=event
        )
    except SSEProtocolError:
        return
    assert all(isinstance(i, (ServerSentEvent, Comment)) for i in items)


@settings(max_examples=200)
@given(streams)
def test_decoder_never_raises_on_any_bytes_within_default_bounds(data: bytes) -> None:
    decode(byte_at_a_time(data))


_field_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n\0"))


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.text(st.characters(blacklist_categories=["Cs"])),
            st.none() | _field_text,
            st.none() | _field_text,
            st.none() | st.integers(0, 10**12),
        ),
        max_size=5,
    )
)
def test_encode_decode_round_trip(
    events: list[tuple[str, str | None, str | None, int | None]],
) -> None:
    wire = b"".join(encode_event(d, event=e, id=i, retry=r) for d, e, i, r in events)
    got = decode(byte_at_a_time(wire))
    last_id = ""
    want = []
    for data, event, id_, retry in events:
        if id_ is not None:
            last_id = id_
        normalized = data.replace("\r\n", "\n").replace("\r", "\n")
        want.append(ServerSentEvent(event or "message", normalized, last_id, retry))
    assert got == want


@settings(max_examples=200)
@given(st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n")))
def test_comment_round_trip(text: str) -> None:
    assert decode([encode_comment(text)]) == [Comment(text)]


# -- real and recorded streams -------------------------------------------------


def _stream_checks(data: bytes) -> list[Item]:
    want = decode([data])
    assert decode(byte_at_a_time(data)) == want
    assert decode(fixed_size(data, 4096)) == want
    # Every split point for small streams; an even spread of 400 for large ones.
    step = max(1, len(data) // 400)
    for i in range(0, len(data) + 1, step):
        assert decode([data[:i], data[i:]]) == want, i
    return want


@pytest.mark.parametrize("path", corpus_params())
def test_corpus_streams_decode_identically_in_every_chunking(path: Path) -> None:
    data = path.read_bytes()
    items = _stream_checks(data)
    # Nothing lost: every blank-line-terminated block that has a data line is one
    # event, and every comment line is one Comment (these captures use LF only).
    blocks = data.split(b"\n\n")[:-1]
    data_blocks = [b for b in blocks if any(ln.startswith(b"data") for ln in b.split(b"\n"))]
    comment_lines = [ln for b in blocks for ln in b.split(b"\n") if ln.startswith(b":")]
    events = [i for i in items if isinstance(i, ServerSentEvent)]
    assert len(events) == len(data_blocks)
    assert len([i for i in items if isinstance(i, Comment)]) == len(comment_lines)
    for event in events:
        assert event.data == "[DONE]" or isinstance(json.loads(event.data), dict)


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: p.name)
def test_fixture_streams_decode_identically_in_every_chunking(path: Path) -> None:
    _stream_checks(path.read_bytes())


def test_protocol_error_is_a_rawsse_error() -> None:
    assert issubclass(SSEProtocolError, RawSSEError)
