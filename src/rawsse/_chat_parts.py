"""The parts of chat decoding off the hot path: rarer chunk fields, and surrogate mending.

``ChatDecoder`` reads an ordinary delta chunk inline; everything else a chunk
may hold (stream metadata, reasoning, content-part arrays, refusals, tool
calls, usage, in-band errors, unmodelled keys) is read here, as are the bounds
on what events carry verbatim and the joining of surrogate pairs split across
deltas.  Each reader appends to the caller's event list and raises
``MalformedChunk`` (built by ``malformed``) on a field of the wrong type.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TypeAlias

from ._chat_events import (
    ChatEvent,
    Extra,
    Finish,
    InBandError,
    ReasoningDelta,
    RefusalDelta,
    StreamStart,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from ._errors import MalformedChunk
from ._json import DEFAULT_MAX_DEPTH, nested_deeper_than
from ._unicode import mend_surrogates

__all__ = [
    "MAX_COUNT",
    "Held",
    "bounded",
    "kind_of",
    "malformed",
    "mend",
    "read_content_parts",
    "read_error",
    "read_reasoning",
    "read_start",
    "read_tail",
    "read_usage",
    "release",
]

MAX_COUNT = 2**53
"""The largest usage count accepted (a larger one is a ``MalformedChunk``)."""

Held: TypeAlias = dict[tuple[int, int, int | None], str]
"""A trailing high surrogate per text field: (choice, field, tool index) to the half."""

_new = tuple.__new__
_MAX_DEPTH = DEFAULT_MAX_DEPTH
_FLOAT_MAX = int(sys.float_info.max)

# Keys a delta models: role and content (read inline by the decoder), reasoning under
# any of the names providers use, then refusal and tool calls.
_REASONING_KEYS = frozenset(("reasoning", "reasoning_content", "reasoning_details"))
_DELTA_KEYS = frozenset(("role", "content", "refusal", "tool_calls")) | _REASONING_KEYS
_TOOL_KEYS = frozenset(("index", "id", "type", "function", "custom"))
_FUNCTION_KEYS = frozenset(("name", "arguments"))
_CUSTOM_KEYS = frozenset(("name", "input"))


def read_start(chunk: dict[str, Any], data: str, out: list[ChatEvent]) -> bool:
    """Append ``StreamStart`` if the chunk has an id or model; return whether it did."""
    id_ = chunk.get("id")
    model = chunk.get("model")
    if id_ is None and model is None:
        return False
    provider = chunk.get("provider")
    created = chunk.get("created")
    for name, value in (("id", id_), ("model", model), ("provider", provider)):
        if value is not None and type(value) is not str:
            raise malformed(data, f"{name} is {kind_of(value)}, not a string")
    if created is not None and (type(created) is not int or not -MAX_COUNT <= created <= MAX_COUNT):
        raise malformed(data, f"created is {kind_of(created)}, not an integer in range")
    id_, model, provider = (
        None if v is None else mend_surrogates(v)[0] for v in (id_, model, provider)
    )
    out.append(_new(StreamStart, (id_, model, provider, created)))
    return True


def read_reasoning(delta: dict[str, Any], index: int, data: str, out: list[ChatEvent]) -> None:
    """Reasoning (which precedes the content of the same delta)."""
    reasoning = delta.get("reasoning")
    other = delta.get("reasoning_content")
    details = delta.get("reasoning_details")
    if reasoning is None and other is None and details is None:
        return
    for name, value in (("reasoning", reasoning), ("reasoning_content", other)):
        if value is not None and type(value) is not str:
            raise malformed(data, f"delta.{name} is {kind_of(value)}, not a string")
    entries: tuple[dict[str, Any], ...] = ()
    from_details = ""
    if details:
        if type(details) is not list:
            raise malformed(data, f"delta.reasoning_details is {kind_of(details)}, not a list")
        parts = []
        for entry in details:
            if type(entry) is not dict:
                raise malformed(data, f"a reasoning_details entry is {kind_of(entry)}")
            for key in ("text", "summary"):
                value = entry.get(key)
                if value is None:
                    continue
                if type(value) is not str:
                    raise malformed(data, f"reasoning_details {key} is {kind_of(value)}")
                if entry.get("type") != "reasoning.encrypted":
                    parts.append(value)
        bounded(details, data)
        entries = tuple(details)
        from_details = "".join(parts)
    elif details is not None and details != []:
        raise malformed(data, f"delta.reasoning_details is {kind_of(details)}, not a list")
    # As OpenRouter's AI SDK provider: a non-empty reasoning_details is the source
    # (``reasoning`` is a plain copy that may disagree with it); else the plain fields.
    text = from_details if entries else reasoning or other or ""
    if text or entries:
        out.append(_new(ReasoningDelta, (index, text, entries)))


def read_content_parts(parts: list[Any], index: int, data: str, out: list[ChatEvent]) -> None:
    """Mistral's ``delta.content`` array: text parts, thinking parts, anything else kept."""
    unknown: list[Any] = []
    for part in parts:
        if type(part) is not dict:
            raise malformed(data, f"a delta.content part is {kind_of(part)}, not an object")
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if type(text) is not str:
                raise malformed(data, f"a text part's text is {kind_of(text)}, not a string")
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
        raise malformed(data, f"a thinking part's thinking is {kind_of(thinking)}, not an array")
    texts = []
    for part in thinking:
        if type(part) is dict and part.get("type") == "text":
            text = part.get("text")
            if type(text) is not str:
                raise malformed(data, f"a thinking text part's text is {kind_of(text)}")
            texts.append(text)
        else:
            unknown.append(part)
    return "".join(texts)


def read_tail(delta: dict[str, Any], index: int, data: str, out: list[ChatEvent]) -> None:
    """Refusal, tool calls and unmodelled keys (which follow the content)."""
    refusal = delta.get("refusal")
    if refusal:
        if type(refusal) is not str:
            raise malformed(data, f"delta.refusal is {kind_of(refusal)}, not a string")
        out.append(_new(RefusalDelta, (index, refusal)))
    elif refusal is not None and refusal != "":
        raise malformed(data, f"delta.refusal is {kind_of(refusal)}, not a string")
    calls = delta.get("tool_calls")
    odd_calls = False
    if calls is not None:
        if type(calls) is not list:
            raise malformed(data, f"delta.tool_calls is {kind_of(calls)}, not a list")
        for call in calls:
            odd_calls = _tool_call(call, index, data, out) or odd_calls
    if not _DELTA_KEYS.issuperset(delta) or odd_calls:
        fields = {
            k: v
            for k, v in delta.items()
            if v is not None and (k not in _DELTA_KEYS or (odd_calls and k == "tool_calls"))
        }
        if fields:
            bounded(fields, data)
            out.append(_new(Extra, (index, fields, "delta")))


def _tool_call(call: Any, index: int, data: str, out: list[ChatEvent]) -> bool:
    """Append one ``ToolCallDelta``; return whether the entry has unmodelled keys."""
    if type(call) is not dict:
        raise malformed(data, f"a tool_calls entry is {kind_of(call)}, not an object")
    tool_index = call.get("index")
    if tool_index is not None and type(tool_index) is not int:
        raise malformed(data, f"tool_calls index is {kind_of(tool_index)}, not an integer")
    id_ = call.get("id")
    type_ = call.get("type")
    function = call.get("function")
    name = arguments = None
    odd = not _TOOL_KEYS.issuperset(call)
    if function is not None:
        if type(function) is not dict:
            raise malformed(data, f"tool_calls function is {kind_of(function)}, not an object")
        name = function.get("name")
        arguments = function.get("arguments")
        odd = odd or not _FUNCTION_KEYS.issuperset(function)
    custom = call.get("custom")
    if custom is not None:
        # OpenAI custom tools: free-text ``input`` streamed in fragments, like arguments.
        if type(custom) is not dict:
            raise malformed(data, f"tool_calls custom is {kind_of(custom)}, not an object")
        name = custom.get("name") if name is None else name
        arguments = custom.get("input") if arguments is None else arguments
        type_ = "custom" if type_ is None else type_
        odd = odd or not _CUSTOM_KEYS.issuperset(custom)
    for key, value in (("id", id_), ("type", type_), ("name", name), ("arguments", arguments)):
        if value is not None and type(value) is not str:
            raise malformed(data, f"tool_calls {key} is {kind_of(value)}, not a string")
    out.append(_new(ToolCallDelta, (index, tool_index, id_, name, arguments or "", type_)))
    return odd


def _count(usage: dict[str, Any], key: str, data: str) -> int | None:
    value = usage.get(key)
    if value is None:
        return None
    if type(value) is not int:
        raise malformed(data, f"usage {key} is {kind_of(value)}, not an integer")
    if not -MAX_COUNT <= value <= MAX_COUNT:
        # No real count is this large, and a float cannot hold it (tokens per second).
        raise malformed(data, f"usage {key} is out of range (beyond 2**53)")
    return value


def read_usage(usage: Any, data: str) -> Usage:
    if type(usage) is not dict:
        raise malformed(data, f"usage is {kind_of(usage)}, not an object")
    bounded(usage, data)
    cost = usage.get("cost")
    if cost is not None and type(cost) is not float:
        if type(cost) is not int or not -_FLOAT_MAX <= cost <= _FLOAT_MAX:
            raise malformed(data, f"usage cost is {kind_of(cost)}, not a (float) number")
        cost = float(cost)
    elif cost is not None and not -_FLOAT_MAX <= cost <= _FLOAT_MAX:  # 1e400 reads as inf
        raise malformed(data, "usage cost is out of range (not a finite number)")
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


def read_error(index: int | None, error: Any, chunk: dict[str, Any], data: str) -> InBandError:
    # Lenient on purpose: an error must surface as an error, whatever its shape.
    # Too deep to carry verbatim: ``raw`` keeps only what the event reports.
    deep = _too_deep(chunk, data)
    if type(error) is str:
        text = mend_surrogates(error)[0]
        raw = {"error": text} if deep else chunk
        return _new(InBandError, (index, None, text, None, raw))
    if type(error) is not dict:
        raise malformed(data, f"error is {kind_of(error)}, not an object")
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


def bounded(value: dict[str, Any] | list[Any], data: str) -> None:
    """Refuse a value an event would carry verbatim if it nests deeper than the bound.

    json.dumps, repr or == of such a value could recurse too far.  Most values
    (unmodelled strings and numbers, usage, reasoning entries) nest two levels
    at most, which a look at their items settles; counting the brackets of the
    payload settles most of the rest.
    """
    for item in value.values() if type(value) is dict else value:
        if (type(item) is dict or type(item) is list) and not _flat(item):
            break
    else:
        return
    if _too_deep(value, data):
        raise malformed(data, f"a value is nested deeper than {_MAX_DEPTH} levels")


def _flat(value: dict[str, Any] | list[Any]) -> bool:
    """Whether ``value`` holds no array or object."""
    for item in value.values() if type(value) is dict else value:
        if type(item) is dict or type(item) is list:
            return False
    return True


def _too_deep(value: object, data: str) -> bool:
    return data.count("{") + data.count("[") > _MAX_DEPTH and nested_deeper_than(value, _MAX_DEPTH)


def _render(value: object) -> str:
    """A non-string error message as JSON text, unless nesting makes that unsafe."""
    if nested_deeper_than(value, DEFAULT_MAX_DEPTH):
        return f"(an error message nested deeper than {DEFAULT_MAX_DEPTH} levels)"
    return json.dumps(value)


def kind_of(value: object) -> str:
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


def malformed(data: str, reason: str) -> MalformedChunk:
    shown = data if len(data) <= 200 else data[:200] + "…"
    return MalformedChunk(f"malformed chunk: {reason}: {shown!r}", payload=data)


def mend(out: list[ChatEvent], mark: int, held: Held) -> int:
    """Join surrogate pairs split across deltas; unpaired surrogates become U+FFFD.

    Runs on one chunk's events, ``out[mark:]``, after the chunk is known good,
    and returns how many lone surrogates were replaced.  A trailing high
    surrogate of a text, reasoning, refusal or tool-call arguments fragment is
    held until the next delta of the same field (a provider cutting an emoji
    between its UTF-16 halves), then joined.
    """
    events = out[mark:]
    del out[mark:]
    append = out.append
    lone = 0
    for event in events:
        kind = type(event)
        if kind is TextDelta or kind is RefusalDelta:
            field = 0 if kind is TextDelta else 2
            value, count = _joined(held, (event[0], field, None), event[1])
            if value:
                append(_new(kind, (event[0], value)))
        elif kind is ReasoningDelta:
            value, count = _joined(held, (event[0], 1, None), event[1])
            if value or event[2]:
                append(_new(ReasoningDelta, (event[0], value, event[2])))
        elif kind is ToolCallDelta:
            value, count = _joined(held, (event[0], 3, event[1]), event[4])
            append(_new(ToolCallDelta, (*event[:4], value, event[5])))
        else:
            if kind is Finish and held:
                released = release(held, event[0])
                lone += len(released)
                out += released
            append(event)
            continue
        lone += count
    return lone


def _joined(held: Held, key: tuple[int, int, int | None], text: str) -> tuple[str, int]:
    before = held.pop(key, None)
    if before is not None:
        text = before + text
    if text and "\ud800" <= text[-1] <= "\udbff":
        held[key] = text[-1]
        text = text[:-1]
    return mend_surrogates(text)


def release(held: Held, index: int | None) -> list[ChatEvent]:
    """The held surrogates of choice ``index`` (None: all) as U+FFFD deltas, each one lone."""
    out: list[ChatEvent] = []
    for key in [k for k in held if index is None or k[0] == index]:
        del held[key]
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
