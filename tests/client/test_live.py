"""The one test that talks to OpenRouter itself: opt-in, with OPENROUTER_API_KEY set.

OPENROUTER_API_KEY=sk-or-... RAWSSE_LIVE_MODEL=openai/gpt-4o-mini pytest tests/test_live.py
"""

from __future__ import annotations

import os

import pytest

import rawsse

pytestmark = pytest.mark.skipif(
    not os.environ.get("OPENROUTER_API_KEY"),
    reason="live OpenRouter run: set OPENROUTER_API_KEY to enable",
)
MODEL = os.environ.get("RAWSSE_LIVE_MODEL", "openai/gpt-4o-mini")
MESSAGES = [{"role": "user", "content": "Reply with exactly: Hello!"}]


def test_live_stream_completes_with_usage() -> None:
    with (
        rawsse.Client(app_title="rawsse tests") as client,
        client.stream(model=MODEL, messages=MESSAGES, max_tokens=16) as stream,
    ):
        events = list(stream)
        result = stream.final()
    assert result.status == "complete"
    assert result.text
    assert result.usage is not None
    assert any(isinstance(e, rawsse.TextDelta) for e in events)
    assert stream.metrics.ttft is not None
    key = os.environ["OPENROUTER_API_KEY"]
    assert key not in repr(result)
    assert key not in repr(stream.metrics)


@pytest.mark.anyio
async def test_live_async_complete() -> None:
    async with rawsse.AsyncClient() as client:
        result = await client.complete(model=MODEL, messages=MESSAGES, max_tokens=16)
    assert result.status == "complete"
    assert result.text
