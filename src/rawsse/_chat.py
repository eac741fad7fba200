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
import sys
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ._chat_events import (
    ChatEvent,
    Done,
    Extra,
    Finish,
    InBandError,
    KeepAlive,
    ReasoningDelta,
    RefusalDelta,
    RoleDelta,
    StreamStart,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from ._constants import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_LINE_BYTES, DONE_DATA
from ._errors import MalformedChunk, SSEProtocolError
from ._json import DEFAULT_MAX_DEPTH, nested_deeper_than
from ._sse import Comment, ServerSentEvent, SSEDecoder
from ._unicode import mend_surrogates

__all__ = ["MAX_COUNT", "ChatDecoder", "parse_chat_stream"]

MAX_COUNT = 2**53
"""The largest usage count accepted (a larger one is a ``MalformedChunk``)."""

_new = tuple.__new__
_MAX_DEPTH = DEFAULT_MAX_DEPTH
_FLOAT_MAX = int(sys.float_info.max)
_loads = json.loads
# json.loads wraps this scanner in a Python call, two regex matches and a
# keyword check: about a third of its time on a typical chunk.  The scanner
# alone parses the same grammar; whatever it does not settle (leading or
# trailing whitespace, an error) goes through json.loads itself, so the
# accepted language and the messages are exactly json.loads's.
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]

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
_DELTA_KEYS = frozenset(
    (
        "role",
        "content",
        "reasoning",
        "reasoning_content",
        "reasoning_details",
        "refusal",
        "tool_calls",
    )
)
_PLAIN_DELTA_KEYS = frozenset(("role", "content"))
_TOOL_KEYS = frozenset(("index", "id", "type", "function", "custom"))
_FUNCTION_KEYS = frozenset(("name", "arguments"))
_CUSTOM_KEYS = frozenset(("name", "input"))


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

    def __init__(
        self,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self._sse = SSEDecoder(max_line_bytes=max_line_bytes, max_event_bytes=max_event_bytes)
        # Items that followed a malformed payload, as (list, start): never copied, so
        # a batch with many bad payloads costs linear time however it is resumed.
        self._pending: deque[tuple[list[ServerSentEvent | Comment], int]] = deque()
        self._roles: dict[int, str] = {}  # the last role reported per choice
        self._started = False
        self.done = False
        """True once ``data: [DONE]`` arrived."""
        self.ignored_after_done = 0
        """How many SSE events and comments arrived after ``[DONE]`` (and were ignored)."""
        # A trailing high surrogate per text field, held until that field's next delta.
        self._held: dict[tuple[int, int, int | None], str] = {}
        self.surrogates_replaced = 0
        """How many unpaired UTF-16 surrogates became U+FFFD in delta text."""

    def feed(self, data: bytes) -> list[ChatEvent]:
        """Decode the next bytes of the stream; return the events they complete."""
        try:
            items = self._sse.feed(data)
        except SSEProtocolError as exc:
            raise self._translated(exc) from None
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
        for position in range(start, len(items)):
            item = items[position]
            if type(item) is not message:
                append(_new(KeepAlive, (item[0],)))
                continue
            data = item[1]
            if data == DONE_DATA:
                self.done = True
                if self._held:
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
                        chunk, end = _scan(data, 0)
                    except StopIteration:
                        end = -1
                    if end != len(data):
                        chunk = _loads(data)
                except (ValueError, RecursionError) as exc:
                    raise _malformed(data, f"data is not JSON ({exc})") from None
                if type(chunk) is not dict:
                    raise _malformed(data, f"data is {_kind(chunk)}, not an object")
                begun = not self._started and _start(chunk, data, out)
                rare = not _COMMON_CHUNK_KEYS.issuperset(chunk)
                if rare:
                    fields = {
                        k: v for k, v in chunk.items() if v is not None and k not in _CHUNK_KEYS
                    }
                    if fields:
                        _bounded(fields, data)
                        append(_new(Extra, (None, fields, "chunk")))
                new_roles: list[tuple[int, str]] | None = None
                choices = chunk.get("choices")
                if choices:
                    if type(choices) is not list:
                        raise _malformed(data, f"choices is {_kind(choices)}, not a list")
                    at = -1
                    for choice in choices:
                        at += 1
                        if type(choice) is not dict:
                            raise _malformed(data, f"choices[{at}] is {_kind(choice)}")
                        index = choice.get("index")
                        if type(index) is not int:
                            if index is not None:
                                raise _malformed(data, f"choices[{at}].index is {_kind(index)}")
                            index = at  # no index: its place in the list is the best guess
                        delta = choice.get("delta")
                        if delta:
                            if type(delta) is not dict:
                                raise _malformed(data, f"choices[{at}].delta is {_kind(delta)}")
                            role = delta.get("role")
                            content = delta.get("content")
                            # Only role and content (non-null) present: the common delta.
                            plain = len(delta) == (role is not None) + (content is not None)
                            if role is not None and roles.get(index) != role:
                                if type(role) is not str:
                                    raise _malformed(data, f"delta.role is {_kind(role)}")
                                if new_roles is None:
                                    new_roles = []
                                new_roles.append((index, role))
                                append(_new(RoleDelta, (index, role)))
                            if not plain:
                                _reasoning(delta, index, data, out)
                            if content:
                                if type(content) is str:
                                    append(_new(TextDelta, (index, content)))
                                elif type(content) is list:
                                    _content_parts(content, index, data, out)
                                else:
                                    raise _malformed(data, f"delta.content is {_kind(content)}")
                            elif content is not None and content != "" and content != []:
                                raise _malformed(data, f"delta.content is {_kind(content)}")
                            if not plain:
                                _tail(delta, index, data, out)
                        elif delta is not None and delta != {}:
                            raise _malformed(data, f"choices[{at}].delta is {_kind(delta)}")
                        odd = not _COMMON_CHOICE_KEYS.issuperset(choice)
                        if odd or choice.get("logprobs") is not None:
                            fields = {
                                k: v
                                for k, v in choice.items()
                                if v is not None and (k not in _CHOICE_KEYS or k == "logprobs")
                            }
                            if fields:
                                _bounded(fields, data)
                                append(_new(Extra, (index, fields, "choice")))
                        reason = choice.get("finish_reason")
                        native = choice.get("native_finish_reason")
                        if reason is not None or native is not None:
                            if (reason is not None and type(reason) is not str) or (
                                native is not None and type(native) is not str
                            ):
                                raise _malformed(data, f"choices[{at}]: finish reason not text")
                            append(_new(Finish, (index, reason, native)))
                        if odd:
                            error = choice.get("error")
                            if error is not None:
                                append(_error(index, error, chunk, data))
                elif choices is not None and choices != []:
                    raise _malformed(data, f"choices is {_kind(choices)}, not a list")
                if rare:
                    usage = chunk.get("usage")
                    if usage is not None:
                        append(_usage(usage, data))
                    error = chunk.get("error")
                    if error is not None:
                        append(_error(None, error, chunk, data))
            except MalformedChunk as exc:
                del out[mark:]
                if position + 1 < len(items):
                    self._pending.appendleft((items, position + 1))
                exc.events = out
                raise
            # A JSON escape is the only way a surrogate gets into a parsed string
            # (the bytes were decoded with "replace"), so most chunks skip this.
            if self._held or "\\ud" in data or "\\uD" in data:
                self._mend(out, mark)
            if begun:
                self._started = True
            if new_roles is not None:
                for index, role in new_roles:
                    roles[index] = role
        return out

    def _mend(self, out: list[ChatEvent], mark: int) -> None:
        """Join surrogate pairs split across deltas; unpaired surrogates become U+FFFD.

        Runs on one chunk's events, ``out[mark:]``, after the chunk is known good.
        A trailing high surrogate of a text, reasoning, refusal or tool-call
        arguments fragment is held until the next delta of the same field (a
        provider cutting an emoji between its UTF-16 halves), then joined.
        """
        held = self._held
        events = out[mark:]
        del out[mark:]
        append = out.append
        for event in events:
            kind = type(event)
            if kind is TextDelta or kind is RefusalDelta:
                field = 0 if kind is TextDelta else 2
                value = self._joined(held, (event[0], field, None), event[1])
                if value:
                    append(_new(kind, (event[0], value)))
            elif kind is ReasoningDelta:
                value = self._joined(held, (event[0], 1, None), event[1])
                if value or event[2]:
                    append(_new(ReasoningDelta, (event[0], value, event[2])))
            elif kind is ToolCallDelta:
                value = self._joined(held, (event[0], 3, event[1]), event[4])
                append(_new(ToolCallDelta, (*event[:4], value, event[5])))
            else:
                if kind is Finish and held:
                    out += self._release(event[0])
                append(event)

    def _joined(self, held: dict[tuple[int, int, int | None], str], key: Any, text: str) -> str:
        before = held.pop(key, None)
        if before is not None:
            text = before + text
        if text and "\ud800" <= text[-1] <= "\udbff":
            held[key] = text[-1]
            text = text[:-1]
        mended, lone = mend_surrogates(text)
        self.surrogates_replaced += lone
        return mended

    def _release(self, index: int | None) -> list[ChatEvent]:
        """The held surrogates of choice ``index`` (None: all) as U+FFFD deltas."""
        out: list[ChatEvent] = []
        for key in [k for k in self._held if index is None or k[0] == index]:
            del self._held[key]
            self.surrogates_replaced += 1
            choice, field, tool_index = key
            if field == 0:
                out.append(_new(TextDelta, (choice, "\ufffd")))
            elif field == 1:
                out.append(_new(ReasoningDelta, (choice, "\ufffd", ())))
            elif field == 2:
                out.append(_new(RefusalDelta, (choice, "\ufffd")))
            else:
                out.append(_new(ToolCallDelta, (choice, tool_index, None, None, "\ufffd", None)))
        return out


def _start(chunk: dict[str, Any], data: str, out: list[ChatEvent]) -> bool:
    """Append ``StreamStart`` if the chunk has an id or model; return whether it did."""
    id_ = chunk.get("id")
    model = chunk.get("model")
    if id_ is None and model is None:
        return False
    provider = chunk.get("provider")
    created = chunk.get("created")
    for name, value in (("id", id_), ("model", model), ("provider", provider)):
        if value is not None and type(value) is not str:
            raise _malformed(data, f"{name} is {_kind(value)}, not a string")
    if created is not None and (type(created) is not int or not -MAX_COUNT <= created <= MAX_COUNT):
        raise _malformed(data, f"created is {_kind(created)}, not an integer in range")
    id_, model, provider = (
        None if v is None else mend_surrogates(v)[0] for v in (id_, model, provider)
    )
    out.append(_new(StreamStart, (id_, model, provider, created)))
    return True


def _reasoning(delta: dict[str, Any], index: int, data: str, out: list[ChatEvent]) -> None:
    """Reasoning (which precedes the content of the same delta)."""
    reasoning = delta.get("reasoning")
    other = delta.get("reasoning_content")
    details = delta.get("reasoning_details")
    if reasoning is None and other is None and details is None:
        return
    for name, value in (("reasoning", reasoning), ("reasoning_content", other)):
        if value is not None and type(value) is not str:
            raise _malformed(data, f"delta.{name} is {_kind(value)}, not a string")
    entries: tuple[dict[str, Any], ...] = ()
    from_details = ""
    if details:
        if type(details) is not list:
            raise _malformed(data, f"delta.reasoning_details is {_kind(details)}, not a list")
        parts = []
        for entry in details:
            if type(entry) is not dict:
                raise _malformed(data, f"a reasoning_details entry is {_kind(entry)}")
            for key in ("text", "summary"):
                value = entry.get(key)
                if value is None:
                    continue
                if type(value) is not str:
                    raise _malformed(data, f"reasoning_details {key} is {_kind(value)}")
                if entry.get("type") != "reasoning.encrypted":
                    parts.append(value)
        _bounded(details, data)
        entries = tuple(details)
        from_details = "".join(parts)
    elif details is not None and details != []:
        raise _malformed(data, f"delta.reasoning_details is {_kind(details)}, not a list")
    # As OpenRouter's AI SDK provider: a non-empty reasoning_details is the source
    # (``reasoning`` is a plain copy that may disagree with it); else the plain fields.
    text = from_details if entries else reasoning or other or ""
    if text or entries:
        out.append(_new(ReasoningDelta, (index, text, entries)))


def _content_parts(parts: list[Any], index: int, data: str, out: list[ChatEvent]) -> None:
    """Mistral's ``delta.content`` array: text parts, thinking parts, anything else kept."""
    unknown: list[Any] = []
    for part in parts:
        if type(part) is not dict:
            raise _malformed(data, f"a delta.content part is {_kind(part)}, not an object")
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if type(text) is not str:
                raise _malformed(data, f"a text part's text is {_kind(text)}, not a string")
            if text:
                out.append(_new(TextDelta, (index, text)))
        elif kind == "thinking":
            thinking = _thinking_text(part.get("thinking"), unknown, data)
            if thinking:
                out.append(_new(ReasoningDelta, (index, thinking, ())))
        else:
            unknown.append(part)
    if unknown:
        # Never into the text, never dropped: the choice's extras keep them.
        out.append(_new(Extra, (index, {"content": unknown}, "delta")))


def _thinking_text(thinking: Any, unknown: list[Any], data: str) -> str:
    """The text of a thinking part (a string, or text parts; other parts go to ``unknown``)."""
    if type(thinking) is str:
        return thinking
    if type(thinking) is not list:
        raise _malformed(data, f"a thinking part's thinking is {_kind(thinking)}, not an array")
    texts = []
    for part in thinking:
        if type(part) is dict and part.get("type") == "text":
            text = part.get("text")
            if type(text) is not str:
                raise _malformed(data, f"a thinking text part's text is {_kind(text)}")
            texts.append(text)
        else:
            unknown.append(part)
    return "".join(texts)


def _tail(delta: dict[str, Any], index: int, data: str, out: list[ChatEvent]) -> None:
    """Refusal, tool calls and unmodelled keys (which follow the content)."""
    refusal = delta.get("refusal")
    if refusal:
        if type(refusal) is not str:
            raise _malformed(data, f"delta.refusal is {_kind(refusal)}, not a string")
        out.append(_new(RefusalDelta, (index, refusal)))
    elif refusal is not None and refusal != "":
        raise _malformed(data, f"delta.refusal is {_kind(refusal)}, not a string")
    calls = delta.get("tool_calls")
    odd_calls = False
    if calls is not None:
        if type(calls) is not list:
            raise _malformed(data, f"delta.tool_calls is {_kind(calls)}, not a list")
        for call in calls:
            odd_calls = _tool_call(call, index, data, out) or odd_calls
    if not _DELTA_KEYS.issuperset(delta) or odd_calls:
        fields = {
            k: v
            for k, v in delta.items()
            if v is not None and (k not in _DELTA_KEYS or (odd_calls and k == "tool_calls"))
        }
        if fields:
            _bounded(fields, data)
            out.append(_new(Extra, (index, fields, "delta")))


def _tool_call(call: Any, index: int, data: str, out: list[ChatEvent]) -> bool:
    """Append one ``ToolCallDelta``; return whether the entry has unmodelled keys."""
    if type(call) is not dict:
        raise _malformed(data, f"a tool_calls entry is {_kind(call)}, not an object")
    tool_index = call.get("index")
    if tool_index is not None and type(tool_index) is not int:
        raise _malformed(data, f"tool_calls index is {_kind(tool_index)}, not an integer")
    id_ = call.get("id")
    type_ = call.get("type")
    function = call.get("function")
    name = arguments = None
    odd = not _TOOL_KEYS.issuperset(call)
    if function is not None:
        if type(function) is not dict:
            raise _malformed(data, f"tool_calls function is {_kind(function)}, not an object")
        name = function.get("name")
        arguments = function.get("arguments")
        odd = odd or not _FUNCTION_KEYS.issuperset(function)
    custom = call.get("custom")
    if custom is not None:
        # OpenAI custom tools: free-text ``input`` streamed in fragments, like arguments.
        if type(custom) is not dict:
            raise _malformed(data, f"tool_calls custom is {_kind(custom)}, not an object")
        name = custom.get("name") if name is None else name
        arguments = custom.get("input") if arguments is None else arguments
        type_ = "custom" if type_ is None else type_
        odd = odd or not _CUSTOM_KEYS.issuperset(custom)
    for key, value in (("id", id_), ("type", type_), ("name", name), ("arguments", arguments)):
        if value is not None and type(value) is not str:
            raise _malformed(data, f"tool_calls {key} is {_kind(value)}, not a string")
    out.append(_new(ToolCallDelta, (index, tool_index, id_, name, arguments or "", type_)))
    return odd


def _count(usage: dict[str, Any], key: str, data: str) -> int | None:
    value = usage.get(key)
    if value is None:
        return None
    if type(value) is not int:
        raise _malformed(data, f"usage {key} is {_kind(value)}, not an integer")
    if not -MAX_COUNT <= value <= MAX_COUNT:
        # No real count is this large, and a float cannot hold it (tokens per second).
        raise _malformed(data, f"usage {key} is out of range (beyond 2**53)")
    return value


def _usage(usage: Any, data: str) -> Usage:
    if type(usage) is not dict:
        raise _malformed(data, f"usage is {_kind(usage)}, not an object")
    _bounded(usage, data)
    cost = usage.get("cost")
    if cost is not None and type(cost) is not float:
        if type(cost) is not int or not -_FLOAT_MAX <= cost <= _FLOAT_MAX:
            raise _malformed(data, f"usage cost is {_kind(cost)}, not a (float) number")
        cost = float(cost)
    elif cost is not None and not -_FLOAT_MAX <= cost <= _FLOAT_MAX:  # 1e400 reads as inf
        raise _malformed(data, "usage cost is out of range (not a finite number)")
    details = usage.get("completion_tokens_details")
    reasoning = _count(details, "reasoning_tokens", data) if type(details) is dict else None
    if reasoning is None:
        reasoning = _count(usage, "reasoning_tokens", data)
    details = usage.get("prompt_tokens_details")
    cached = _count(details, "cached_tokens", data) if type(details) is dict else None
    if cached is None:
        cached = _count(usage, "cached_tokens", data)
    return _new(
        Usage,
        (
            _count(usage, "prompt_tokens", data),
            _count(usage, "completion_tokens", data),
            _count(usage, "total_tokens", data),
            reasoning,
            cached,
            cost,
            usage,
        ),
    )


def _error(index: int | None, error: Any, chunk: dict[str, Any], data: str) -> InBandError:
    # Lenient on purpose: an error must surface as an error, whatever its shape.
    # Too deep to carry verbatim: ``raw`` keeps only what the event reports.
    deep = _too_deep(chunk, data)
    if type(error) is str:
        text = mend_surrogates(error)[0]
        raw = {"error": text} if deep else chunk
        return _new(InBandError, (index, None, text, None, raw))
    if type(error) is not dict:
        raise _malformed(data, f"error is {_kind(error)}, not an object")
    code = error.get("code")
    if code is None:
        code = error.get("http_status")  # availability errors carry no code
    if type(code) is not int and type(code) is not str:
        code = None
    message = error.get("message")
    if type(message) is not str:
        message = "" if message is None else _render(message)
    else:
        message = mend_surrogates(message)[0]
    metadata = error.get("metadata")
    if type(metadata) is not dict or (deep and _too_deep(metadata, data)):
        metadata = None
    raw = {"error": {"code": code, "message": message}} if deep else chunk
    return _new(InBandError, (index, code, message, metadata, raw))


def _bounded(value: object, data: str) -> None:
    """Refuse a value an event would carry verbatim if it nests deeper than the bound.

    json.dumps, repr or == of such a value could recurse too far.  Counting the
    brackets of the payload (outside the hot path) settles most cases at once.
    """
    if _too_deep(value, data):
        raise _malformed(data, f"a value is nested deeper than {_MAX_DEPTH} levels")


def _too_deep(value: object, data: str) -> bool:
    return data.count("{") + data.count("[") > _MAX_DEPTH and nested_deeper_than(value, _MAX_DEPTH)


def _render(value: object) -> str:
    """A non-string error message as JSON text, unless nesting makes that unsafe."""
    if nested_deeper_than(value, DEFAULT_MAX_DEPTH):
        return f"(an error message nested deeper than {DEFAULT_MAX_DEPTH} levels)"
    return json.dumps(value)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _malformed(data: str, reason: str) -> MalformedChunk:
    shown = data if len(data) <= 200 else data[:200] + "…"
    return MalformedChunk(f"malformed chunk: {reason}: {shown!r}", payload=data)


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
