"""Differential test: rawsse and the openai SDK read the same bytes to the same message.

Every corpus and fixture stream is served through the SDK's own HTTP client
(httpx2) with a mock transport, in 4 KiB pieces; the SDK's chunk models are
accumulated in the plain OpenAI way (and, where it copes, by the SDK's own
``ChatCompletionStreamState``).  Content, tool calls and finish reasons must
equal rawsse's.  Streams the SDK cannot read are skipped with the reason: the
Responses / Messages skins (no ``choices``), payloads that are not JSON, and
shapes its chunk models lack (Mistral content arrays, custom tool calls).  On
an in-band error chunk the SDK raises ``APIError``; then what it read before the
error must match, and rawsse's status must be ``error``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rawsse import ChatResult, MalformedChunk, accumulate, parse_chat_stream
from tests.conftest import corpus_files, fixture_files
from tests.helpers import fixed_size

openai = pytest.importorskip("openai")
httpx2 = pytest.importorskip("httpx2")

NOT_CHAT = ("responses", "messages", "anthropic__")
# Shapes the SDK's chunk models do not model, so its reading is not a reference.
SDK_CANNOT_READ = {
    "mistral_content_parts.sse": "delta.content is an array of parts; the SDK types it as a "
    "string (its accumulation raises TypeError)",
    "custom_tool_call.sse": "ChoiceDeltaToolCall has no `custom` field: the SDK reads a custom "
    "tool call as nameless with no arguments",
}

Message = dict[int, dict[str, Any]]
"""choice index -> {"content", "tool_calls": [(id, name, arguments)], "finish_reason"}."""


def params() -> list[Any]:
    files = corpus_files() + fixture_files()
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(reason="no corpus and no fixtures"))]
    return [pytest.param(p, id=f"{p.parent.name}/{p.name}") for p in files]


def sdk_read(data: bytes) -> tuple[list[Any], Exception | None]:
    """The SDK's chunk models for ``data``, and the exception that stopped it, if any."""

    def handler(request: Any) -> Any:
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=iter(fixed_size(data, 4096))
        )

    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    client = openai.OpenAI(
        api_key="test", base_url="http://test.invalid/v1", http_client=http, max_retries=0
    )
    chunks: list[Any] = []
    try:
        stream = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with stream:
            chunks.extend(stream)  # one by one: an error keeps the chunks before it
    except openai.APIError as exc:
        return chunks, exc
    finally:
        http.close()
    return chunks, None


def sdk_message(chunks: list[Any]) -> Message:
    """Accumulate chunk models the way OpenAI's docs do (tool calls by ``index``)."""
    out: Message = {}
    for chunk in chunks:
        for choice in chunk.choices:
            state = out.setdefault(
                choice.index, {"content": "", "calls": {}, "finish_reason": None}
            )
            delta = choice.delta
            if delta is not None:
                state["content"] += delta.content or ""
                for call in delta.tool_calls or []:
                    entry = state["calls"].setdefault(call.index, ["", "", ""])
                    function = call.function
                    entry[0] = entry[0] or call.id or ""
                    if function is not None:
                        entry[1] = entry[1] or function.name or ""
                        entry[2] += function.arguments or ""
            if choice.finish_reason is not None:
                state["finish_reason"] = choice.finish_reason
    return {
        index: {
            "content": s["content"],
            "tool_calls": [tuple(v) for v in s["calls"].values()],
            "finish_reason": s["finish_reason"],
        }
        for index, s in out.items()
    }


def sdk_state_message(chunks: list[Any]) -> Message | None:
    """The SDK's own accumulator's view, or None where it gives up."""
    from openai.lib.streaming.chat import ChatCompletionStreamState

    state: Any = ChatCompletionStreamState()
    try:
        for chunk in chunks:
            state.handle_chunk(chunk)
        snapshot = state.current_completion_snapshot
    except Exception:  # it rejects some real shapes (annotations without index)
        return None
    return {
        c.index: {
            "content": c.message.content or "",
            "tool_calls": [
                (t.id or "", t.function.name or "", t.function.arguments or "")
                for t in (c.message.tool_calls or [])
            ],
            "finish_reason": c.finish_reason,
        }
        for c in snapshot.choices
    }


def rawsse_message(result: ChatResult) -> Message:
    return {
        c.index: {
            "content": c.content,
            "tool_calls": [(t.id or "", t.name or "", t.arguments) for t in c.tool_calls],
            "finish_reason": c.finish_reason,
        }
        for c in result.choices
    }


def without_finish(message: Message) -> Message:
    return {i: {**m, "finish_reason": None} for i, m in message.items()}


@pytest.mark.parametrize("path", params())
def test_same_message_as_the_openai_sdk(path: Path) -> None:
    if any(part in path.name for part in NOT_CHAT):
        pytest.skip("not a chat-completions stream (no choices): the SDK cannot read it")
    if path.name in SDK_CANNOT_READ:
        pytest.skip(SDK_CANNOT_READ[path.name])
    data = path.read_bytes()
    try:
        result = accumulate(parse_chat_stream(data))
    except MalformedChunk:
        with pytest.raises(json.JSONDecodeError):
            sdk_read(data)
        pytest.skip("a payload is not JSON: the SDK cannot read it either (it raises)")
    chunks, error = sdk_read(data)
    ours = rawsse_message(result)
    if error is not None:
        # The SDK stops at the error chunk without yielding it: compare what it read
        # before (the error chunk's own content, "" in every capture, aside).
        assert result.status == "error"
        theirs = sdk_message(chunks)
        assert without_finish(ours) == without_finish(theirs)
        return
    assert ours == sdk_message(chunks)
    state = sdk_state_message(chunks)
    if state is not None:
        assert ours == state
