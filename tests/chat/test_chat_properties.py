"""Properties of the chat layer over every recorded stream and over arbitrary input.

* Any chunking of a stream (whole, every split point, byte by byte, random
  cuts) gives the same events, the same malformed payloads and the same result.
* On any input, ``parse_chat_stream`` raises nothing but ``RawSSEError`` and
  ``accumulate`` of what it decoded raises nothing at all.
* Every fixture decodes to the outcome its generator wrote in expected.json.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawsse import (
    ChatDecoder,
    ChatEvent,
    ChatResult,
    KeepAlive,
    MalformedChunk,
    RawSSEError,
    accumulate,
    parse_chat_stream,
)
from tests.conftest import CORPUS, FIXTURES, corpus_files, fixture_files
from tests.helpers import byte_at_a_time, every_split, fixed_size, whole

# Streams this small are split at every point; larger ones at sampled points (around
# every line end, where framing bugs live, and at random).  Streams up to BYTEWISE
# bytes are fed byte by byte; larger ones (the 1.8 MB image capture) in 97-byte pieces.
SMALL = 2 * 1024
BYTEWISE = 256 * 1024


def stream_params() -> list[Any]:
    files = corpus_files() + fixture_files()
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(reason="no corpus and no fixtures"))]
    return [pytest.param(p, id=f"{p.parent.name}/{p.name}") for p in files]


Outcome = tuple[list[ChatEvent], list[str], ChatResult]


def decode(chunks: list[bytes]) -> Outcome:
    """Feed the chunks, going on after each ``MalformedChunk``.

    Returns the events, the malformed payloads and the accumulated result.
    """
    decoder = ChatDecoder()
    events: list[ChatEvent] = []
    malformed: list[str] = []
    for chunk in [*chunks, None]:
        data = chunk
        while True:
            try:
                events += decoder.close() if data is None else decoder.feed(data)
                break
            except MalformedChunk as exc:
                events += exc.events
                malformed.append(exc.payload)
                data = b"" if data is not None else None
    return events, malformed, accumulate(events)


_cache: dict[Path, tuple[bytes, Outcome]] = {}


def reference(path: Path) -> tuple[bytes, Outcome]:
    if path not in _cache:
        data = path.read_bytes()
        _cache[path] = (data, decode(whole(data)))
    return _cache[path]


def split_points(data: bytes) -> list[int]:
    rng = random.Random(len(data))
    points = {0, len(data)}
    samples = 60 if len(data) <= BYTEWISE else 10  # each split of a huge stream costs more
    ends = [i for i in range(len(data)) if data[i] in b"\r\n"]
    for i in rng.sample(ends, min(len(ends), samples)):
        points.update((i - 1, i, i + 1, i + 2))
    points.update(rng.randrange(len(data)) for _ in range(samples))
    return sorted(p for p in points if 0 <= p <= len(data))


@pytest.mark.parametrize("path", stream_params())
def test_every_split_point(path: Path) -> None:
    data, expected = reference(path)
    if len(data) <= SMALL:
        splits = list(every_split(data))
    else:
        splits = [[data[:i], data[i:]] for i in split_points(data)]
    for chunks in splits:
        assert decode(chunks) == expected, f"split at {len(chunks[0])}"


@pytest.mark.parametrize("path", stream_params())
def test_byte_at_a_time(path: Path) -> None:
    data, expected = reference(path)
    chunks = byte_at_a_time(data) if len(data) <= BYTEWISE else fixed_size(data, 97)
    assert decode(chunks) == expected


@pytest.mark.parametrize("path", stream_params())
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.floats(min_value=0, max_value=1), max_size=40))
def test_random_chunking(path: Path, cuts: list[float]) -> None:
    data, expected = reference(path)
    points = sorted({int(c * len(data)) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    assert decode(chunks) == expected


@pytest.mark.parametrize("path", stream_params())
def test_parse_chat_stream_agrees(path: Path) -> None:
    data, (events, malformed, result) = reference(path)
    if malformed:
        with pytest.raises(MalformedChunk) as info:
            parse_chat_stream(data)
        assert info.value.payload == malformed[0]
        assert info.value.partial is not None
    else:
        assert parse_chat_stream(data) == events
        assert accumulate(events) == result


# --- expected.json (written by the fixture generator from its own description) -------------------


def expected_params() -> list[Any]:
    path = FIXTURES / "expected.json"
    if not path.is_file():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=f"{path} is absent"))]
    entries = json.loads(path.read_text(encoding="utf-8"))
    return [
        pytest.param(name, entry, id=name)
        for name, entry in entries.items()
        if entry.get("kind") == "stream"
    ]


@pytest.mark.parametrize(("name", "entry"), expected_params())
def test_fixture_outcome_matches_expected_json(name: str, entry: dict[str, Any]) -> None:
    path = FIXTURES / entry["body_file"]
    events, malformed, result = decode(whole(path.read_bytes()))
    assert result.status == entry["status"]
    assert result.done == entry["done"]
    assert (result.id, result.model, result.provider, result.created) == (
        entry["id"],
        entry["model"],
        entry["provider"],
        entry["created"],
    )
    assert result.text == entry["text"]
    got = [
        {
            "index": c.index,
            "role": c.role,
            "content": c.content,
            "reasoning": c.reasoning,
            "reasoning_details": c.reasoning_details,
            "tool_calls": [
                {
                    "index": t.index,
                    "id": t.id,
                    "type": t.type,
                    "name": t.name,
                    "arguments": t.arguments,
                }
                for t in c.tool_calls
            ],
            "refusal": c.refusal,
            "finish_reason": c.finish_reason,
            "native_finish_reason": c.native_finish_reason,
        }
        for c in result.choices
    ]
    assert got == entry["choices"]
    assert (None if result.usage is None else result.usage.raw) == entry["usage"]
    error = None if result.error is None else result.error.raw.get("error")
    assert error == entry["error"]
    assert sum(type(e) is KeepAlive for e in events) == entry["keepalives"]
    assert malformed == entry["malformed_payloads"]


# --- arbitrary input -----------------------------------------------------------------------------

big_ints = st.sampled_from([2**63, -(2**63), 10**400, -(10**400)])
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | big_ints
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)


def field(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A plausible value most of the time, anything JSON sometimes."""
    return st.one_of(good, good, st.none(), json_values)


texts = st.text(max_size=5)
small_ints = st.integers(min_value=-1, max_value=3)
details = st.fixed_dictionaries(
    {},
    optional={
        "type": field(
            st.sampled_from(["reasoning.text", "reasoning.summary", "reasoning.encrypted"])
        ),
        "text": field(texts),
        "summary": field(texts),
        "data": field(texts),
        "signature": field(texts),
        "index": field(small_ints),
    },
)
tool_calls = st.fixed_dictionaries(
    {},
    optional={
        "index": field(small_ints),
        "id": field(texts),
        "type": field(st.just("function")),
        "function": field(
            st.fixed_dictionaries({}, optional={"name": field(texts), "arguments": field(texts)})
        ),
        "extra": json_values,
    },
)
deltas = st.fixed_dictionaries(
    {},
    optional={
        "role": field(st.just("assistant")),
        "content": field(texts),
        "reasoning": field(texts),
        "reasoning_content": field(texts),
        "reasoning_details": field(st.lists(field(details), max_size=3)),
        "refusal": field(texts),
        "tool_calls": field(st.lists(field(tool_calls), max_size=3)),
        "annotations": json_values,
    },
)
errors = field(
    st.fixed_dictionaries(
        {},
        optional={
            "code": field(st.integers() | texts),
            "message": field(texts),
            "metadata": json_values,
        },
    )
)
choices = st.fixed_dictionaries(
    {},
    optional={
        "index": field(small_ints),
        "delta": field(deltas),
        "finish_reason": field(st.sampled_from(["stop", "length", "tool_calls", "error"])),
        "native_finish_reason": field(texts),
        "logprobs": json_values,
        "error": errors,
    },
)
usages = st.fixed_dictionaries(
    {},
    optional={
        "prompt_tokens": field(st.integers()),
        "completion_tokens": field(st.integers()),
        "total_tokens": field(st.integers()),
        "cost": field(st.floats(allow_nan=False) | st.integers() | big_ints),
        "prompt_tokens_details": field(
            st.fixed_dictionaries({"cached_tokens": field(st.integers())})
        ),
        "completion_tokens_details": field(
            st.fixed_dictionaries({"reasoning_tokens": field(st.integers())})
        ),
    },
)
chunks = st.fixed_dictionaries(
    {},
    optional={
        "id": field(texts),
        "model": field(texts),
        "provider": field(texts),
        "created": field(st.integers()),
        "object": field(st.just("chat.completion.chunk")),
        "choices": field(st.lists(field(choices), max_size=3)),
        "usage": field(usages),
        "error": errors,
        "system_fingerprint": json_values,
    },
)
payloads = st.one_of(
    chunks.map(json.dumps),
    json_values.map(json.dumps),
    st.sampled_from(["[DONE]", "", "[DONE] ", "{", "NaN", "1e999", '"\\ud800"']),
    st.text(max_size=20).map(lambda s: s.replace("\n", " ").replace("\r", " ")),
)


def only_rawsse_errors(data: bytes | list[bytes]) -> tuple[list[ChatEvent], str | None]:
    """Decode and accumulate; anything but a ``RawSSEError`` fails the test."""
    partial: ChatResult | None = None
    try:
        events = parse_chat_stream(data)
    except MalformedChunk as exc:
        events, payload, partial = exc.events, exc.payload, exc.partial
    except RawSSEError:
        return [], "other"
    else:
        accumulate(events)
        return events, None
    assert partial == accumulate(events)
    return events, payload


@settings(max_examples=300, deadline=None)
@given(st.lists(payloads, max_size=6), st.data())
def test_arbitrary_chunks_raise_only_rawsse_errors(items: list[str], draw: st.DataObject) -> None:
    stream = b"".join(b"data: " + p.encode("utf-8", "surrogatepass") + b"\n\n" for p in items)
    first = only_rawsse_errors(stream)
    # ... and decode the same in pieces.
    assert decode(whole(stream))[:2] == decode(byte_at_a_time(stream))[:2]
    assert first == only_rawsse_errors(byte_at_a_time(stream))
    cut = draw.draw(st.integers(min_value=0, max_value=len(stream)))
    assert decode([stream[:cut], stream[cut:]]) == decode(whole(stream))


sse_bytes = st.lists(
    st.sampled_from(
        [
            b"data: ",
            b"data:",
            b"\n",
            b"\r",
            b"\r\n",
            b":",
            b" ",
            b"[DONE]",
            b"{",
            b"}",
            b'"choices"',
            b'"delta"',
            b'"content"',
            b"[",
            b"]",
            b",",
            b"\xef\xbb\xbf",
            b"\xff",
            b"event: x\n",
            b"0",
        ]
    )
    | st.binary(max_size=4),
    max_size=40,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), sse_bytes))
def test_arbitrary_bytes_raise_only_rawsse_errors(data: bytes) -> None:
    only_rawsse_errors(data)
    assert decode(whole(data)) == decode(byte_at_a_time(data))


@settings(max_examples=100, deadline=None)
@given(st.lists(chunks.map(json.dumps), min_size=1, max_size=5))
def test_result_snapshot_at_every_event_never_fails(items: list[str]) -> None:
    stream = b"".join(b"data: " + p.encode("utf-8", "surrogatepass") + b"\n\n" for p in items)
    events, _, final = decode(whole(stream))
    from rawsse import ChatAccumulator

    accumulator = ChatAccumulator()
    for event in events:
        accumulator.add(event)
        accumulator.result()
    assert accumulator.result() == final


def test_corpus_is_present_or_skipped_clearly() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"{CORPUS} is absent")
    assert corpus_files()
