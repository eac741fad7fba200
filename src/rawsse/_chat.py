"""The sans-I/O chat-completion decoder: SSE events in, typed chat events out.

``ChatDecoder`` owns an ``SSEDecoder``; each ``data:`` payload is parsed once
(json's own scanner) and, for an ordinary delta, becomes one event.  It knows
nothing of HTTP.  The SSE ``event:`` name is not used: every data payload is
read as a chunk (OpenAI-compatible streams send none).

Malformed input raises: a payload that is not JSON, not an object, or has a
field of the wrong type (``"choices": 5``, ``"content": 7``) raises
``MalformedChunk`` carrying the payload and the events decoded before it in the
same call.  The bad payload is skipped whole (none of its events are kept, no
state changes) and the decoder stays usable: the next ``feed``, ``close`` or
``decode_event`` first returns the events that followed it in the same call.
An empty payload (``data:`` alone) is ignored.  Nothing but ``RawSSEError``
subclasses escapes, on any input; an ``SSEProtocolError`` carries the chat
events decoded before it.  Values that events carry verbatim (``Extra``,
``raw``, reasoning details) nest at most ``DEFAULT_MAX_DEPTH`` levels, and
usage counts stay within ``MAX_COUNT``.

Delta text is always encodable: a UTF-16 surrogate pair split across two
deltas of the same field is joined (the high half is held until that field's
next delta), and an unpaired surrogate becomes U+FFFD, counted in
``surrogates_replaced``.  This is done here rather than in the accumulator so
that every consumer of events (a UI prints them) gets valid strings.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ._chat_events import ChatEvent, Done, Extra, Finish, KeepAlive, RoleDelta, TextDelta
from ._chat_parts import (
    MAX_COUNT,
    Held,
    bounded,
    kind_of,
    malformed,
    mend,
    read_content_parts,
    read_error,
    read_reasoning,
    read_start,
    read_tail,
    read_usage,
    release,
)
from ._constants import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_LINE_BYTES, DONE_DATA
from ._errors import MalformedChunk, SSEProtocolError
from ._sse import Comment, ServerSentEvent, SSEDecoder

__all__ = ["MAX_COUNT", "ChatDecoder", "parse_chat_stream"]

_new = tuple.__new__
_loads = json.loads
# json.loads wraps this scanner in a Python call, two regex matches and a
# keyword check: about a third of its time on a typical chunk.  The scanner
# alone parses the same grammar; whatever it does not settle (leading or
# trailing whitespace, an error) goes through json.loads itself, so the
# accepted language and the messages are exactly json.loads's.
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
# "\\ud" or "\\uD": how a surrogate's escape begins.  One regex search costs a fifth
# of two ``in`` tests on a payload with wide characters.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD]").search

# Keys each level models.  One superset test against the common keys tells
# that an object has nothing rare (usage, error, unmodelled keys); only then
# are its other keys looked at.  ``logprobs`` is unmodelled but present (as
# null) on most chunks, so it is checked on its own.  ``object`` is not
# reported: it is the constant "chat.completion.chunk".
_COMMON_CHUNK_KEYS = frozenset(("id", "object", "created", "model", "provider", "choices"))
_CHUNK_KEYS = _COMMON_CHUNK_KEYS | {"usage", "error"}
_COMMON_CHOICE_KEYS = frozenset(
    ("index", "delta", "finish_reason", "native_finish_reason", "logprobs")
)
_CHOICE_KEYS = _COMMON_CHOICE_KEYS | {"error"}


class ChatDecoder:
    """Incremental decoder: ``feed(bytes)`` and ``close()`` return chat events in order.

    ``done`` is true once ``data: [DONE]`` (exactly) arrived; every SSE event or
    comment after it is ignored and counted in ``ignored_after_done``.  Events:
    ``StreamStart`` once; the chunk's ``Extra``; per choice, in this order, ``RoleDelta`` (when the
    role first appears or changes), ``ReasoningDelta``, ``TextDelta``,
    ``RefusalDelta``, ``ToolCallDelta`` per fragment, ``Extra``, ``Finish``,
    ``InBandError``; then the chunk's ``Usage`` and top-level ``InBandError``
    (last, so that everything else in an error chunk is seen first).
    """

    __slots__ = (
        "_held",
        "_pending",
        "_roles",
        "_sse",
        "_started",
        "done",
        "ignored_after_done",
        "surrogates_replaced",
    )

    done: bool
    """True once ``data: [DONE]`` arrived."""
    ignored_after_done: int
    """How many SSE events and comments arrived after ``[DONE]`` (and were ignored)."""
    surrogates_replaced: int
    """How many unpaired UTF-16 surrogates became U+FFFD in delta text."""

    def __init__(
        self,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self._sse = SSEDecoder(max_line_bytes=max_line_bytes, max_event_bytes=max_event_bytes)
        # Items that followed a malformed payload, as (list, start): never copied, so
        # a batch with many bad payloads costs linear time however it is resumed.
        # Made at the first one: a deque is some 600 bytes, and a relay holds a
        # decoder per open stream.
        self._pending: deque[tuple[list[ServerSentEvent | Comment], int]] | None = None
        self._roles: dict[int, str] = {}  # the last role reported per choice
        self._started = False
        self.done = False
        self.ignored_after_done = 0
        # A trailing high surrogate per text field, held until that field's next delta.
        self._held: Held = {}
        self.surrogates_replaced = 0

    def feed(self, data: bytes) -> list[ChatEvent]:
        """Decode the next bytes of the stream; return the events they complete."""
        try:
            items = self._sse.feed(data)
        except SSEProtocolError as exc:
            raise self._translated(exc) from None
        if self._pending is None:  # ``_run``'s usual case, without its call
            return self._decode(items, 0)
        return self._run(items)

    def close(self) -> list[ChatEvent]:
        """End of the byte stream: return what is left (an unterminated event is discarded).

        A high surrogate still held (its pair never came) is returned as U+FFFD.
        """
        try:
            items = self._sse.close()
        except SSEProtocolError as exc:
            raise self._translated(exc) from None
        out = self._run(items)
        if self._held:
            out += self._release(None)
        return out

    def decode_event(self, item: ServerSentEvent | Comment) -> list[ChatEvent]:
        """Decode one already-parsed SSE event or comment (for callers with their own SSE)."""
        return self._run([item])

    def _translated(self, exc: SSEProtocolError) -> SSEProtocolError:
        """The SSE error with the chat events of the SSE events decoded before it.

        A malformed payload among those events is raised instead (it came first).
        """
        return SSEProtocolError(exc.message, events=self._run(exc.events))

    def _run(self, items: list[ServerSentEvent | Comment]) -> list[ChatEvent]:
        pending = self._pending
        if not pending:
            return self._decode(items, 0)
        # Items that followed a malformed payload in an earlier call come first.
        if items:
            pending.append((items, 0))
        out: list[ChatEvent] = []
        while pending:
            batch, start = pending.popleft()
            try:
                out += self._decode(batch, start)
            except MalformedChunk as exc:
                exc.events = out + exc.events
                raise
        return out

    def _decode(self, items: list[ServerSentEvent | Comment], start: int) -> list[ChatEvent]:
        if self.done:
            self.ignored_after_done += len(items) - start
            return []
        out: list[ChatEvent] = []
        append = out.append
        message = ServerSentEvent
        roles = self._roles
        held = self._held  # mutated in place only, so this name stays current
        started = self._started
        # Per-chunk names as locals: the loop below runs once per chunk.
        new = _new
        scan = _scan
        done_data = DONE_DATA
        text_delta = TextDelta
        common_chunk = _COMMON_CHUNK_KEYS
        common_choice = _COMMON_CHOICE_KEYS
        escape = _SURROGATE_ESCAPE
        for position in range(start, len(items)):
            item = items[position]
            if type(item) is not message:
                append(new(KeepAlive, (item[0],)))
                continue
            data = item[1]
            if data == done_data:
                self.done = True
                if held:
                    out += self._release(None)
                append(_new(Done, ()))
                self.ignored_after_done += len(items) - position - 1
                break
            if not data:
                continue
            # The hot path, inlined (a call costs as much as several lookups): one
            # dict lookup per field, and one superset test per level to learn that
            # nothing rare (usage, error, unmodelled keys) is present.  State is
            # committed at the end, so a chunk that fails changes nothing.
            mark = len(out)
            try:
                try:
                    try:
                        chunk, end = scan(data, 0)
                    except StopIteration:
                        end = -1
                    if end != len(data):
                        chunk = _loads(data)
                except (ValueError, RecursionError) as exc:
                    raise malformed(data, f"data is not JSON ({exc})") from None
                if type(chunk) is not dict:
                    raise malformed(data, f"data is {kind_of(chunk)}, not an object")
                begun = not started and read_start(chunk, data, out)
                rare = not common_chunk.issuperset(chunk)
                if rare:
                    fields = {
                        k: v for k, v in chunk.items() if v is not None and k not in _CHUNK_KEYS
                    }
                    if fields:
                        bounded(fields, data)
                        append(_new(Extra, (None, fields, "chunk")))
                new_roles: list[tuple[int, str]] | None = None
                choices = chunk.get("choices")
                if choices:
                    if type(choices) is not list:
                        raise malformed(data, f"choices is {kind_of(choices)}, not a list")
                    at = -1
                    for choice in choices:
                        at += 1
                        if type(choice) is not dict:
                            raise malformed(data, f"choices[{at}] is {kind_of(choice)}")
                        index = choice.get("index")
                        if type(index) is not int:
                            if index is not None:
                                raise malformed(data, f"choices[{at}].index is {kind_of(index)}")
                            index = at  # no index: its place in the list is the best guess
                        delta = choice.get("delta")
                        if delta:
                            if type(delta) is not dict:
                                raise malformed(data, f"choices[{at}].delta is {kind_of(delta)}")
                            role = delta.get("role")
                            content = delta.get("content")
                            # Only role and content (non-null) present: the common delta.
                            plain = len(delta) == (role is not None) + (content is not None)
                            if role is not None and roles.get(index) != role:
                                if type(role) is not str:
                                    raise malformed(data, f"delta.role is {kind_of(role)}")
                                if new_roles is None:
                                    new_roles = []
                                new_roles.append((index, role))
                                append(_new(RoleDelta, (index, role)))
                            if not plain:
                                read_reasoning(delta, index, data, out)
                            if content:
                                if type(content) is str:
                                    append(new(text_delta, (index, content)))
                                elif type(content) is list:
                                    read_content_parts(content, index, data, out)
                                else:
                                    raise malformed(data, f"delta.content is {kind_of(content)}")
                            elif content is not None and content != "" and content != []:
                                raise malformed(data, f"delta.content is {kind_of(content)}")
                            if not plain:
                                read_tail(delta, index, data, out)
                        elif delta is not None and delta != {}:
                            raise malformed(data, f"choices[{at}].delta is {kind_of(delta)}")
                        odd = not common_choice.issuperset(choice)
                        if odd or choice.get("logprobs") is not None:
                            fields = {
                                k: v
                                for k, v in choice.items()
                                if v is not None and (k not in _CHOICE_KEYS or k == "logprobs")
                            }
                            if fields:
                                bounded(fields, data)
                                append(_new(Extra, (index, fields, "choice")))
                        reason = choice.get("finish_reason")
                        native = choice.get("native_finish_reason")
                        if reason is not None or native is not None:
                            if (reason is not None and type(reason) is not str) or (
                                native is not None and type(native) is not str
                            ):
                                raise malformed(data, f"choices[{at}]: finish reason not text")
                            append(_new(Finish, (index, reason, native)))
                        if odd:
                            error = choice.get("error")
                            if error is not None:
                                append(read_error(index, error, chunk, data))
                elif choices is not None and choices != []:
                    raise malformed(data, f"choices is {kind_of(choices)}, not a list")
                if rare:
                    usage = chunk.get("usage")
                    if usage is not None:
                        append(read_usage(usage, data))
                    error = chunk.get("error")
                    if error is not None:
                        append(read_error(None, error, chunk, data))
            except MalformedChunk as exc:
                del out[mark:]
                if position + 1 < len(items):
                    if self._pending is None:
                        self._pending = deque()
                    self._pending.appendleft((items, position + 1))
                exc.events = out
                raise
            # A JSON escape is the only way a surrogate gets into a parsed string
            # (the bytes were decoded with "replace"), so most chunks skip this: a
            # payload without a backslash is settled by one C-level character scan.
            if held or ("\\" in data and escape(data) is not None):
                self.surrogates_replaced += mend(out, mark, held)
            if begun:
                self._started = started = True
            if new_roles is not None:
                for index, role in new_roles:
                    roles[index] = role
        return out

    def _release(self, index: int | None) -> list[ChatEvent]:
        """The held surrogates of choice ``index`` (None: all) as U+FFFD deltas."""
        out = release(self._held, index)
        self.surrogates_replaced += len(out)
        return out


def parse_chat_stream(data: bytes | Iterable[bytes]) -> list[ChatEvent]:
    """Decode a whole stream (bytes, or an iterable of byte chunks) into chat events.

    A malformed payload raises ``MalformedChunk``, a broken SSE bound
    ``SSEProtocolError``; either carries ``events`` = every event before it and
    ``partial`` = their accumulated result.
    """
    from ._accumulate import accumulate

    decoder = ChatDecoder()
    events: list[ChatEvent] = []
    try:
        for chunk in _chunks(data):
            events += decoder.feed(chunk)
        events += decoder.close()
    except MalformedChunk as exc:
        events += exc.events
        raise MalformedChunk(
            exc.message, payload=exc.payload, events=events, partial=accumulate(events)
        ) from None
    except SSEProtocolError as exc:
        events += exc.events
        raise SSEProtocolError(exc.message, events=events, partial=accumulate(events)) from None
    return events


def _chunks(data: bytes | Iterable[bytes]) -> Iterable[bytes]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return [bytes(data)]
    return data
