"""A chat completion document and the ``ChatResult`` it stands for, both ways.

``result_from_completion`` reads a non-streaming answer (``stream=False``) as the
result the same stream would have added up to; ``completion_from_result`` writes
the non-streaming document a stream adds up to (the fixture server's
``stream=false`` answers); ``stream_from_completion`` writes the event stream a
non-streaming document stands for (the fixture server's ``stream=true`` answers
from a non-streaming cassette).  All pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._accumulate import ChatAccumulator, ChatResult, ToolCall
from ._chat import ChatDecoder
from ._errors import UnexpectedContentType
from ._http_errors import MAX_BODY_CHARS
from ._json import loads_bounded

__all__ = [
    "completion_document",
    "completion_from_result",
    "result_from_completion",
    "stream_from_completion",
    "unexpected_content",
]


def result_from_completion(status: int, headers: Mapping[str, str], body: bytes) -> ChatResult:
    """The ``ChatResult`` of a non-streaming answer (``stream=False``).

    The completion is turned into the one chunk it would have been as a stream
    and decoded by the same ``ChatDecoder``, so both paths give equal results
    (lone surrogates become U+FFFD there).  JSON nested deeper than 64 levels,
    ``NaN`` and ``Infinity`` are not a completion: ``UnexpectedContentType``.
    """
    try:
        data = loads_bounded(body)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("choices", []), list):
        raise unexpected_content("a JSON chat completion", status, headers, body)
    chunk = {k: v for k, v in data.items() if k != "choices"}
    choices = []
    for position, choice in enumerate(data.get("choices") or []):
        if not isinstance(choice, dict):
            continue
        converted = {k: v for k, v in choice.items() if k != "message"}
        converted.setdefault("index", position)
        converted["delta"] = _delta_of(choice.get("message"))
        choices.append(converted)
    chunk["choices"] = choices
    decoder = ChatDecoder()
    accumulator = ChatAccumulator()
    # ASCII: a lone surrogate stays a JSON escape, for the decoder to mend.
    payload = json.dumps(chunk).encode("ascii")
    for event in decoder.feed(b"data: " + payload + b"\n\ndata: [DONE]\n\n"):
        accumulator.add(event)
    return accumulator.result()


def unexpected_content(
    expected: str, status: int, headers: Mapping[str, str], body: bytes
) -> UnexpectedContentType:
    """The error for an answer that is not the ``expected`` kind (its start quoted)."""
    content_type = headers.get("content-type", "")
    text = body[:MAX_BODY_CHARS].decode("utf-8", "replace")
    return UnexpectedContentType(
        f"expected {expected}, got HTTP {status} with "
        f"Content-Type {content_type or '(none)'!r}: {text[:200]!r}",
        status=status,
        content_type=content_type,
        body=text,
    )


def _delta_of(message: object) -> dict[str, Any]:
    """A completion's ``message`` as the stream's ``delta``: each tool call with its ``index``."""
    delta = dict(message) if isinstance(message, dict) else {}
    calls = delta.get("tool_calls")
    if isinstance(calls, list):
        delta["tool_calls"] = [
            {"index": i, **call} if isinstance(call, dict) and "index" not in call else call
            for i, call in enumerate(calls)
        ]
    return delta


def completion_from_result(result: ChatResult) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` document a stream adds up to."""
    choices = []
    for choice in result.choices:
        message: dict[str, Any] = {"role": choice.role or "assistant", "content": choice.content}
        if choice.reasoning:
            message["reasoning"] = choice.reasoning
        if choice.reasoning_details:
            message["reasoning_details"] = choice.reasoning_details
        if choice.refusal is not None:
            message["refusal"] = choice.refusal
        if choice.tool_calls:
            if not choice.content:
                message["content"] = None
            message["tool_calls"] = [_tool_call(call) for call in choice.tool_calls]
        entry: dict[str, Any] = {
            "index": choice.index,
            "message": message,
            "finish_reason": choice.finish_reason,
            "native_finish_reason": choice.native_finish_reason,
        }
        error = result.error
        if error is not None and error.index in (None, choice.index):
            # The stream's own finish reason stands ("length" before a token-limit
            # error); "error" only where the stream gave none.
            entry["finish_reason"] = choice.finish_reason or "error"
            entry["error"] = {"code": error.code, "message": error.message}
            if error.metadata is not None:
                entry["error"]["metadata"] = error.metadata
        choices.append(entry)
    doc: dict[str, Any] = {
        "id": result.id,
        "object": "chat.completion",
        "created": result.created,
        "model": result.model,
    }
    if result.provider is not None:
        doc["provider"] = result.provider
    doc["choices"] = choices
    if result.usage is not None:
        doc["usage"] = result.usage.raw
    return doc


def _tool_call(call: ToolCall) -> dict[str, Any]:
    if call.type == "custom":
        return {
            "id": call.id,
            "type": "custom",
            "custom": {"name": call.name, "input": call.arguments},
        }
    return {
        "id": call.id,
        "type": call.type or "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def completion_document(body: bytes) -> dict[str, Any] | None:
    """``body`` as a non-streaming ``chat.completion`` document, or None when it is not one.

    One is a JSON object whose ``choices`` carry a ``message`` (or whose ``object``
    is ``chat.completion``); an error body or an event stream is not.
    """
    if body.lstrip()[:1] != b"{":
        return None
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    choices = doc.get("choices")
    if not isinstance(choices, list):
        return None
    if doc.get("object") == "chat.completion":
        return doc
    has_message = any(isinstance(c, dict) and "message" in c for c in choices)
    return doc if has_message else None


def stream_from_completion(doc: Mapping[str, Any]) -> bytes:
    """The event stream a non-streaming ``chat.completion`` document stands for.

    Synthesised, not recorded: per choice one chunk with the whole message as its
    delta (role, content, reasoning, tool calls with their ``index``), then one
    with its finish reason (and ``logprobs``/``error``, where sent); then a usage
    chunk with ``choices: []``, then ``data: [DONE]``.  Chunk-level keys (``id``,
    ``model``, ``provider``, ``system_fingerprint``, ...) repeat on every chunk,
    with ``object: "chat.completion.chunk"``.  Decoded by ``ChatDecoder``, it
    gives the result ``result_from_completion`` reads from the document.
    """
    envelope = {k: v for k, v in doc.items() if k not in ("choices", "usage", "error")}
    envelope["object"] = "chat.completion.chunk"
    chunks: list[dict[str, Any]] = []
    finishes: list[dict[str, Any]] = []
    for position, choice in enumerate(doc.get("choices") or []):
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", position)
        delta = _delta_of(choice.get("message"))
        chunks.append({**envelope, "choices": [{"index": index, "delta": delta}]})
        rest = {k: v for k, v in choice.items() if k not in ("index", "message")}
        finishes.append({**envelope, "choices": [{"index": index, "delta": {}, **rest}]})
    chunks += finishes
    if doc.get("error") is not None:
        if not chunks:
            chunks.append({**envelope, "choices": []})
        chunks[-1]["error"] = doc["error"]
    if doc.get("usage") is not None:
        chunks.append({**envelope, "choices": [], "usage": doc["usage"]})
    events = [
        b"data: " + json.dumps(c, ensure_ascii=False).encode("utf-8") + b"\n\n" for c in chunks
    ]
    return b"".join(events) + b"data: [DONE]\n\n"
