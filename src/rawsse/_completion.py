"""A chat completion document and the ``ChatResult`` it stands for, both ways.

``result_from_completion`` reads a non-streaming answer (``stream=False``) as the
result the same stream would have added up to; ``completion_from_result`` writes
the non-streaming document a stream adds up to (the fixture server's
``stream=false`` answers).  Both are pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._accumulate import ChatAccumulator, ChatResult
from ._chat import ChatDecoder
from ._errors import UnexpectedContentType
from ._http_errors import MAX_BODY_CHARS

__all__ = ["completion_from_result", "result_from_completion"]


def result_from_completion(status: int, headers: Mapping[str, str], body: bytes) -> ChatResult:
    """The ``ChatResult`` of a non-streaming answer (``stream=False``).

    The completion is turned into the one chunk it would have been as a stream
    and decoded by the same ``ChatDecoder``, so both paths give equal results.
    """
    content_type = headers.get("content-type", "")
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("choices", []), list):
        text = body[:MAX_BODY_CHARS].decode("utf-8", "replace")
        raise UnexpectedContentType(
            f"expected a JSON chat completion, got HTTP {status} with Content-Type "
            f"{content_type or '(none)'!r}: {text[:200]!r}",
            status=status,
            content_type=content_type,
            body=text,
        )
    chunk = {k: v for k, v in data.items() if k != "choices"}
    choices = []
    for position, choice in enumerate(data.get("choices") or []):
        if not isinstance(choice, dict):
            continue
        converted = {k: v for k, v in choice.items() if k != "message"}
        converted.setdefault("index", position)
        message = choice.get("message")
        delta = dict(message) if isinstance(message, dict) else {}
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            delta["tool_calls"] = [
                {"index": i, **call} if isinstance(call, dict) and "index" not in call else call
                for i, call in enumerate(calls)
            ]
        converted["delta"] = delta
        choices.append(converted)
    chunk["choices"] = choices
    decoder = ChatDecoder()
    accumulator = ChatAccumulator()
    payload = json.dumps(chunk, ensure_ascii=False).encode("utf-8")
    for event in decoder.feed(b"data: " + payload + b"\n\ndata: [DONE]\n\n"):
        accumulator.add(event)
    return accumulator.result()


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
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": call.type or "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in choice.tool_calls
            ]
        entry: dict[str, Any] = {
            "index": choice.index,
            "message": message,
            "finish_reason": choice.finish_reason,
            "native_finish_reason": choice.native_finish_reason,
        }
        error = result.error
        if error is not None and error.index in (None, choice.index):
            entry["finish_reason"] = "error"
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
