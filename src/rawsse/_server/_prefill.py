"""Recordings continued from an assistant prefill, and the faults that exercise resuming.

Sans-I/O, cassette in and cassette out, for the fixture server:

``continue_cassette``
    A request whose last message is an assistant message (a prefill) that is a
    prefix of one choice's recorded answer gets the rest of that answer, as
    choice 0, from the chunk where the prefill ends (what came before, reasoning
    included, is not sent again), optionally with a ``Seam`` quirk: the last
    characters of the prefill repeated, or one leading space trimmed.
``stop_at_length``
    Each choice ends with ``finish_reason: "length"`` after N content deltas.
``error_at``
    An in-band error chunk with a given code replaces the stream from byte N.

The body is re-encoded one SSE event per recorded event (``data:`` lines,
compact JSON), each stamped with the time of the recorded chunk that completed
it; the continuation starts at the recording's first-token time.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._cassette import Cassette
from .._sse import Comment, ServerSentEvent, SSEDecoder, encode_comment, encode_event
from ._http import BadRequest

__all__ = [
    "ResumeFaults",
    "Seam",
    "continue_cassette",
    "error_at",
    "parse_resume_faults",
    "prefill_of",
    "prepare",
    "stop_at_length",
]

# OpenRouter's error types for the codes a fault may ask for; others are "server".
_ERROR_TYPES = {
    400: "invalid_request",
    408: "timeout",
    429: "rate_limit_exceeded",
    500: "server",
    502: "provider_unavailable",
    503: "provider_unavailable",
    504: "timeout",
    529: "provider_overloaded",
}


@dataclass(frozen=True)
class Seam:
    """How a continuation starts: ``repeat`` the prefill's last characters, or
    ``trim`` one leading space of what follows it."""

    repeat: int = 0
    trim: bool = False

    @classmethod
    def parse(cls, text: str) -> Seam:
        """``"none"``, ``"trim"`` or ``"repeat:N"``; ``ValueError`` otherwise."""
        value = text.strip().lower()
        if value in ("", "none"):
            return cls()
        if value == "trim":
            return cls(trim=True)
        name, _, count = value.partition(":")
        if name == "repeat" and count.isdigit() and int(count) > 0:
            return cls(repeat=int(count))
        raise ValueError(f"a seam quirk is 'none', 'trim' or 'repeat:N' (N > 0): {text!r}")

    def __str__(self) -> str:
        return "trim" if self.trim else f"repeat:{self.repeat}" if self.repeat else "none"


def prefill_of(request: Any) -> str | None:
    """The text of the request body's trailing assistant message, or None."""
    if not isinstance(request, Mapping):
        return None
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, Mapping) or last.get("role") != "assistant":
        return None
    content = last.get("content")
    if isinstance(content, list):  # content parts: their text joined
        content = "".join(
            p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text"
        )
    return content if isinstance(content, str) and content else None


Item = tuple[float, "ServerSentEvent | Comment"]


def _items(cassette: Cassette) -> list[Item]:
    """The recorded body as SSE items, each with the time of the chunk that completed it."""
    decoder = SSEDecoder()
    items: list[Item] = []
    t = cassette.response_t
    for t, data in cassette.chunks:
        items += [(t, item) for item in decoder.feed(data)]
    items += [(t, item) for item in decoder.close()]
    return items


def _chunk(item: ServerSentEvent | Comment) -> dict[str, Any] | None:
    if type(item) is not ServerSentEvent or item.data == "[DONE]":
        return None
    try:
        chunk = json.loads(item.data)
    except ValueError:
        return None
    return chunk if isinstance(chunk, dict) else None


def _choices(chunk: dict[str, Any]) -> list[dict[str, Any]]:
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return []
    return [c for c in choices if isinstance(c, dict)]


def _index(choice: dict[str, Any], position: int) -> int:
    index = choice.get("index")
    return index if isinstance(index, int) else position


def _content(choice: dict[str, Any]) -> str:
    delta = choice.get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""


def _encode(
    items: Iterable[tuple[float, ServerSentEvent | Comment | dict[str, Any]]],
) -> list[tuple[float, bytes]]:
    """Items as cassette chunks: one per item, SSE-encoded."""
    chunks: list[tuple[float, bytes]] = []
    for t, item in items:
        if isinstance(item, dict):
            data = encode_event(json.dumps(item, ensure_ascii=False, separators=(",", ":")))
        elif isinstance(item, Comment):
            data = encode_comment(item.text)
        else:
            data = encode_event(item.data)
        chunks.append((t, data))
    return chunks


def continue_cassette(cassette: Cassette, prefill: str, seam: Seam = Seam()) -> Cassette | None:
    """The recorded answer of the first choice that starts with ``prefill``,
    continued after it; None when no choice's content starts with it."""
    items = _items(cassette)
    answers: dict[int, list[str]] = {}
    for _, item in items:
        chunk = _chunk(item)
        if chunk is not None:
            for position, choice in enumerate(_choices(chunk)):
                answers.setdefault(_index(choice, position), []).append(_content(choice))
    target = next((i for i in sorted(answers) if "".join(answers[i]).startswith(prefill)), None)
    if target is None:
        return None
    out: list[tuple[float, ServerSentEvent | Comment | dict[str, Any]]] = []
    consumed = 0  # characters of the target's answer that the prefill covers
    started = False
    trim = seam.trim
    first_t: float | None = None  # the recording's first data event
    shift = 0.0
    for t, item in items:
        chunk = _chunk(item)
        if first_t is None and chunk is not None:
            first_t = t
        if chunk is None:
            if started or (type(item) is ServerSentEvent and item.data == "[DONE]"):
                out.append((t - shift, item))
            continue
        kept = []
        for position, choice in enumerate(_choices(chunk)):
            if _index(choice, position) != target:
                continue
            text = _content(choice)
            if not started:
                end = consumed + len(text)
                if end < len(prefill) or (
                    end == len(prefill) and not _has_more_than_content(choice)
                ):
                    consumed = end
                    continue  # all of it is prefill
                started = True
                text = text[len(prefill) - consumed :]
                if seam.repeat:
                    text = prefill[len(prefill) - seam.repeat :] + text
            if trim and text:
                text, trim = text.removeprefix(" "), False
            choice = {**choice, "index": 0}
            delta = choice.get("delta")
            if isinstance(delta, dict) and (text or "content" in delta):
                choice["delta"] = {**delta, "content": text}
            elif text:
                choice["delta"] = {"content": text}
            kept.append(choice)
        if not kept and not (started and _has_more_than_choices(chunk)):
            continue
        if not out and first_t is not None:
            shift = t - first_t
        out.append((t - shift, {**chunk, "choices": kept}))
    return dataclasses.replace(cassette, chunks=_encode(out))


def _has_more_than_content(choice: dict[str, Any]) -> bool:
    """A choice entry that carries something besides content (a finish, tool calls)."""
    if choice.get("finish_reason") is not None:
        return True
    delta = choice.get("delta")
    return isinstance(delta, dict) and any(
        v for k, v in delta.items() if k not in ("content", "role")
    )


def _has_more_than_choices(chunk: dict[str, Any]) -> bool:
    return any(chunk.get(k) is not None for k in ("usage", "error"))


def stop_at_length(cassette: Cassette, deltas: int) -> Cassette:
    """Each choice stopped with ``finish_reason: "length"`` after ``deltas`` content
    deltas (text, reasoning or tool-call fragments)."""
    counts: dict[int, int] = {}
    out: list[tuple[float, ServerSentEvent | Comment | dict[str, Any]]] = []
    for t, item in _items(cassette):
        chunk = _chunk(item)
        if chunk is None or not _choices(chunk):
            out.append((t, item))
            continue
        kept = []
        for position, choice in enumerate(_choices(chunk)):
            index = _index(choice, position)
            count = counts.get(index, 0)
            if count >= deltas:
                continue  # stopped
            if _is_content(choice):
                count = counts[index] = count + 1
            if count >= deltas:
                choice = {**choice, "finish_reason": "length", "native_finish_reason": "length"}
            kept.append(choice)
        if kept or _has_more_than_choices(chunk):
            out.append((t, {**chunk, "choices": kept}))
    return dataclasses.replace(cassette, chunks=_encode(out))


def _is_content(choice: dict[str, Any]) -> bool:
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return False
    return any(delta.get(k) for k in ("content", "reasoning", "reasoning_content", "tool_calls"))


def error_at(cassette: Cassette, offset: int, code: int) -> Cassette:
    """The stream up to the first event that ends at or after body byte ``offset``,
    then an in-band error chunk with ``code`` and ``[DONE]``."""
    out: list[tuple[float, ServerSentEvent | Comment | dict[str, Any]]] = []
    served = 0
    envelope: dict[str, Any] = {}
    t = cassette.response_t
    for t, item in _items(cassette):
        if served >= offset:
            break
        chunk = _chunk(item)
        if chunk is not None:
            envelope = {k: v for k, v in chunk.items() if k in ("id", "object", "created", "model")}
        elif type(item) is ServerSentEvent and item.data == "[DONE]":
            break
        out.append((t, item))
        served += len(_encode([(t, item)])[0][1])
    error_type = _ERROR_TYPES.get(code, "server")
    message = f"Injected error {code} ({error_type})"
    error = {"code": code, "message": message, "metadata": {"error_type": error_type}}
    failed = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
    out.append((t, {**envelope, "error": error, "choices": [failed]}))
    out.append((t, ServerSentEvent(data="[DONE]")))
    return dataclasses.replace(cassette, chunks=_encode(out))


@dataclass(frozen=True)
class ResumeFaults:
    """A request's resume headers: ``X-Rawsse-Seam``, ``X-Rawsse-Length-After``,
    ``X-Rawsse-Error-At`` and ``X-Rawsse-Once``."""

    seam: Seam | None = None
    """The seam quirk of a continuation (None: the server's)."""
    length_after: int | None = None
    error_at: tuple[int, int] | None = None
    """(body byte, error code)."""
    once: str | None = None
    """A token: the faults apply only the first time the server sees it."""


def parse_resume_faults(headers: Mapping[str, str]) -> ResumeFaults:
    """The resume headers of a request; ``BadRequest`` (400) when one is malformed."""
    try:
        seam = Seam.parse(headers["x-rawsse-seam"]) if "x-rawsse-seam" in headers else None
        length = None
        if "x-rawsse-length-after" in headers:
            length = int(headers["x-rawsse-length-after"])
            if length < 1:
                raise ValueError
        error = None
        if "x-rawsse-error-at" in headers:
            at, _, code = headers["x-rawsse-error-at"].partition(",")
            error = (int(at), int(code or "503"))
            if error[0] < 0 or not 100 <= error[1] <= 599:
                raise ValueError
    except ValueError:
        raise BadRequest(
            400,
            "bad resume header: X-Rawsse-Seam: none|trim|repeat:N, X-Rawsse-Length-After: N "
            "(deltas, > 0), X-Rawsse-Error-At: N[,CODE] (byte, HTTP-like code)",
        ) from None
    once = headers.get("x-rawsse-once") or None
    return ResumeFaults(seam, length, error, once)


def prepare(
    cassette: Cassette, body: bytes, faults: ResumeFaults, seam: Seam, *, fresh: bool
) -> Cassette:
    """The cassette a chat request gets: continued after its prefill, if it has one
    that starts a recorded answer, and with the resume faults when ``fresh``."""
    if cassette.status != 200 or not cassette.headers.get("content-type", "").startswith(
        "text/event-stream"
    ):
        return cassette
    try:
        prefill = prefill_of(json.loads(body))
    except ValueError:
        prefill = None
    if prefill is not None:
        continued = continue_cassette(cassette, prefill, faults.seam or seam)
        if continued is not None:
            cassette = continued
    if fresh and faults.length_after is not None:
        cassette = stop_at_length(cassette, faults.length_after)
    if fresh and faults.error_at is not None:
        cassette = error_at(cassette, *faults.error_at)
    return cassette
