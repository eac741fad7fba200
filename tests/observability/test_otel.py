"""``rawsse.otel``: GenAI metrics and spans, driven through the observer hooks.

These tests play a stream's lifecycle on the observer directly (start, retry,
end), with the OpenTelemetry SDK's in-memory reader and exporter; the tests
over real streams from the fixture server are in ``test_otel_streams.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, StatusCode

import rawsse
from rawsse import ChatResult, ChatStatus, ChoiceResult, StreamMetrics, Usage
from rawsse import otel as rotel
from rawsse._observe import RequestInfo, StreamObserver, StreamOutcome

from .telemetry import NAMES, SECONDS, Telemetry

TOKENS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216]
TOKENS += [67108864]
PROMPT = "the secret prompt"
ANSWER = "the secret answer"


class FakeClient:
    """The observer API a ``Client`` offers."""

    def __init__(self) -> None:
        self.observers: tuple[StreamObserver, ...] = ()

    def add_observer(self, observer: StreamObserver) -> None:
        self.observers += (observer,)

    def remove_observer(self, observer: StreamObserver) -> None:
        self.observers = tuple(o for o in self.observers if o is not observer)


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.shutdown()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(rotel.CAPTURE_ENV, raising=False)
    monkeypatch.delenv(rotel.OPT_IN_ENV, raising=False)


def request(**kw: Any) -> RequestInfo:
    values: dict[str, Any] = {
        "model": "vendor/model",
        "server_address": "127.0.0.1",
        "server_port": 8123,
        "params": {"max_tokens": 64, "temperature": 0.5, "stop": ["END"], "seed": 7},
        "messages": [{"role": "user", "content": PROMPT}],
    }
    values.update(kw)
    return RequestInfo(**values)


def result(status: ChatStatus = ChatStatus.COMPLETE) -> ChatResult:
    return ChatResult(
        id="gen-42",
        model="vendor/model-2026",
        provider="Upstream",
        choices=(ChoiceResult(index=0, role="assistant", content=ANSWER, finish_reason="stop"),),
        usage=Usage(10, 4, 14, 2, 3, 0.0001, {}),
        status=status,
    )


def metrics(**kw: Any) -> StreamMetrics:
    values: dict[str, Any] = {
        "ttft": 0.25,
        "total": 0.75,
        "attempts": 2,
        "ttfb": 0.1,
        "status": "complete",
        "model": "vendor/model-2026",
        "provider": "Upstream",
        "generation_id": "gen-42",
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "reasoning_tokens": 2,
        "request_model": "vendor/model",
    }
    values.update(kw)
    return StreamMetrics(**values)


def play(
    telemetry: Telemetry,
    outcome: StreamOutcome,
    *,
    info: RequestInfo | None = None,
    retries: int = 1,
    **instrument: Any,
) -> FakeClient:
    client = FakeClient()
    rotel.instrument(
        client,
        meter_provider=telemetry.meter_provider,
        tracer_provider=telemetry.tracer_provider,
        **instrument,
    )
    (observer,) = client.observers
    observation = observer.start(info or request())
    assert observation is not None
    for attempt in range(1, retries + 1):
        observation.retry(attempt, rawsse.APIConnectionError("refused"), 0.125)
    observation.end(outcome)
    return client


BASE = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "vendor/model",
    "gen_ai.response.model": "vendor/model-2026",
    "server.address": "127.0.0.1",
    "server.port": 8123,
}


def test_metrics_names_units_buckets_attributes_and_values(telemetry: Telemetry) -> None:
    play(telemetry, StreamOutcome(metrics(), result(), None, gaps=(0.05, 0.125, 0.5)))
    found = telemetry.histograms()
    assert {name: unit for name, (unit, _) in found.items()} == NAMES
    (duration,) = found["gen_ai.client.operation.duration"][1]
    assert dict(duration.attributes or {}) == BASE
    assert (duration.count, duration.sum) == (1, 0.75)
    assert list(duration.explicit_bounds) == SECONDS
    (ttfc,) = found["gen_ai.client.operation.time_to_first_chunk"][1]
    assert dict(ttfc.attributes or {}) == BASE
    assert (ttfc.count, ttfc.sum) == (1, 0.25)
    assert list(ttfc.explicit_bounds) == SECONDS
    (per_chunk,) = found["gen_ai.client.operation.time_per_output_chunk"][1]
    assert (per_chunk.count, per_chunk.sum, per_chunk.min, per_chunk.max) == (3, 0.675, 0.05, 0.5)
    assert list(per_chunk.explicit_bounds) == SECONDS
    tokens = {
        dict(p.attributes or {})["gen_ai.token.type"]: p
        for p in found["gen_ai.client.token.usage"][1]
    }
    assert set(tokens) == {"input", "output"}
    assert (tokens["input"].sum, tokens["output"].sum) == (10, 4)
    assert dict(tokens["input"].attributes or {}) == {**BASE, "gen_ai.token.type": "input"}
    assert list(tokens["input"].explicit_bounds) == TOKENS


def test_span_names_kind_attributes_and_retry_events(telemetry: Telemetry) -> None:
    play(telemetry, StreamOutcome(metrics(), result(), None), retries=2)
    span = telemetry.span()
    assert span.name == "chat vendor/model"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        **BASE,
        "gen_ai.request.stream": True,
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.request.seed": 7,
        "gen_ai.response.id": "gen-42",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.response.time_to_first_chunk": 0.25,
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 4,
        "gen_ai.usage.reasoning.output_tokens": 2,
        "gen_ai.usage.cache_read.input_tokens": 3,
        "rawsse.attempts": 2,
        "rawsse.continuations": 0,
        "rawsse.upstream_provider": "Upstream",
        "rawsse.generation_id": "gen-42",
    }
    assert [(e.name, dict(e.attributes or {})) for e in span.events] == [
        (
            "rawsse.retry",
            {"rawsse.attempt": n, "error.type": "APIConnectionError", "rawsse.retry.delay": 0.125},
        )
        for n in (1, 2)
    ]


def test_no_prompt_or_answer_text_by_default(telemetry: Telemetry) -> None:
    play(telemetry, StreamOutcome(metrics(), result(), None))
    text = (
        json.dumps({k: str(v) for k, v in (telemetry.span().attributes or {}).items()})
        + telemetry.reader.get_metrics_data().to_json()
    )  # type: ignore[union-attr]
    assert PROMPT not in text
    assert ANSWER not in text


@pytest.mark.parametrize("value", ["true", "SPAN_ONLY", "span_and_event"])
def test_content_capture_opt_in(
    telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(rotel.CAPTURE_ENV, value)
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": PROMPT}, {"type": "image_url"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    play(telemetry, StreamOutcome(metrics(), result(), None), info=request(messages=messages))
    attributes = telemetry.span().attributes or {}
    assert json.loads(str(attributes["gen_ai.input.messages"])) == [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": PROMPT}, {"type": "image_url"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c1", "name": "f", "arguments": "{}"}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "42"}]},
    ]
    assert json.loads(str(attributes["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": ANSWER}],
            "finish_reason": "stop",
        }
    ]


@pytest.mark.parametrize("value", ["false", "NO_CONTENT", "EVENT_ONLY", ""])
def test_content_capture_stays_off(
    telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(rotel.CAPTURE_ENV, value)
    play(telemetry, StreamOutcome(metrics(), result(), None))
    assert "gen_ai.input.messages" not in (telemetry.span().attributes or {})


def test_content_capture_argument_wins_over_the_environment(
    telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(rotel.CAPTURE_ENV, "true")
    play(telemetry, StreamOutcome(metrics(), result(), None), capture_content=False)
    assert "gen_ai.output.messages" not in (telemetry.span().attributes or {})


def test_failure_sets_error_type_and_status(telemetry: Telemetry) -> None:
    err = rawsse.IncompleteStreamError("the connection broke mid-stream")
    outcome = StreamOutcome(
        metrics(status="truncated", prompt_tokens=None, completion_tokens=None),
        result(ChatStatus.TRUNCATED),
        err,
        gaps=(0.05,),
    )
    play(telemetry, outcome, retries=0)
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "IncompleteStreamError"
    assert (span.attributes or {})["error.type"] == "IncompleteStreamError"
    found = telemetry.histograms()
    (duration,) = found["gen_ai.client.operation.duration"][1]
    assert dict(duration.attributes or {}) == {**BASE, "error.type": "IncompleteStreamError"}
    # Content had arrived: its timing is still recorded, without error.type (not in its
    # attribute list); no usage chunk, so no token usage.
    (ttfc,) = found["gen_ai.client.operation.time_to_first_chunk"][1]
    assert dict(ttfc.attributes or {}) == BASE
    assert "gen_ai.client.token.usage" not in found


def test_failure_before_any_content(telemetry: Telemetry) -> None:
    err = rawsse.FirstTokenTimeout("no content arrived within 1.0 s", timeout=1.0)
    outcome = StreamOutcome(
        StreamMetrics(total=1.0, attempts=1, status="timed_out", request_model="vendor/model"),
        ChatResult(status=ChatStatus.TIMED_OUT),
        err,
    )
    play(telemetry, outcome, retries=0)
    found = telemetry.histograms()
    assert set(found) == {"gen_ai.client.operation.duration"}
    (duration,) = found["gen_ai.client.operation.duration"][1]
    expected = {k: v for k, v in BASE.items() if k != "gen_ai.response.model"}
    assert dict(duration.attributes or {}) == {**expected, "error.type": "FirstTokenTimeout"}
    assert "gen_ai.response.model" not in (telemetry.span().attributes or {})


def test_cancelled_stream(telemetry: Telemetry) -> None:
    outcome = StreamOutcome(metrics(status="cancelled"), result(ChatStatus.CANCELLED), None)
    play(telemetry, outcome, retries=0)
    span = telemetry.span()
    assert (span.attributes or {})["error.type"] == "cancelled"
    assert span.status.status_code is StatusCode.ERROR
    (duration,) = telemetry.histograms()["gen_ai.client.operation.duration"][1]
    assert (duration.attributes or {})["error.type"] == "cancelled"


def test_in_band_error_yielded_not_raised(telemetry: Telemetry) -> None:
    outcome = StreamOutcome(metrics(status="error"), result(ChatStatus.ERROR), None)
    play(telemetry, outcome, retries=0)
    assert (telemetry.span().attributes or {})["error.type"] == "error"


def test_continuation_events(telemetry: Telemetry) -> None:
    client = FakeClient()
    rotel.instrument(client, telemetry.meter_provider, telemetry.tracer_provider)
    observation = client.observers[0].start(request())
    assert observation is not None
    observation.continuation(1, rawsse.IncompleteStreamError("cut"))
    observation.continuation(2, None)
    observation.end(StreamOutcome(metrics(), result(), None))
    span = telemetry.span()
    assert [(e.name, dict(e.attributes or {})) for e in span.events] == [
        ("rawsse.continuation", {"rawsse.continuation": 1, "error.type": "IncompleteStreamError"}),
        ("rawsse.continuation", {"rawsse.continuation": 2}),
    ]
    assert (span.attributes or {})["rawsse.continuations"] == 2


@pytest.mark.parametrize(
    "opt_in", [None, "gen_ai_latest_experimental", "http, gen_ai_latest_experimental"]
)
def test_stability_opt_in_emits_exactly_the_latest_names(
    telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch, opt_in: str | None
) -> None:
    if opt_in is not None:
        monkeypatch.setenv(rotel.OPT_IN_ENV, opt_in)
    client = play(telemetry, StreamOutcome(metrics(), result(), None, gaps=(0.1,)))
    (observer,) = client.observers
    assert isinstance(observer, rotel.GenAIObserver)
    assert observer.latest_experimental is (opt_in is not None)
    assert {name: unit for name, (unit, _) in telemetry.histograms().items()} == NAMES
    attributes = telemetry.span().attributes or {}
    assert "gen_ai.provider.name" in attributes
    assert "gen_ai.system" not in attributes  # the name before 1.37


def test_instrument_again_replaces_and_uninstrument_removes(telemetry: Telemetry) -> None:
    client = FakeClient()
    first = rotel.instrument(client, telemetry.meter_provider, telemetry.tracer_provider)
    second = rotel.instrument(client, telemetry.meter_provider, telemetry.tracer_provider)
    assert client.observers == (second,)
    assert first is not second
    rotel.uninstrument(client)
    assert client.observers == ()
    rotel.uninstrument(client)


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("openrouter.ai", "openrouter"),
        ("eu.openrouter.ai", "openrouter"),
        ("api.openai.com", "openai"),
        ("my.openai.azure.com", "azure.ai.openai"),
        ("api.groq.com", "groq"),
        ("127.0.0.1", "openai"),
        ("notopenrouter.ai", "openai"),
    ],
)
def test_provider_name(host: str, name: str) -> None:
    assert rotel.provider_name(host) == name


def test_unsampled_span_still_records_metrics(telemetry: Telemetry) -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    tracer_provider = TracerProvider(sampler=ALWAYS_OFF)
    client = FakeClient()
    rotel.instrument(client, telemetry.meter_provider, tracer_provider)
    observation = client.observers[0].start(request())
    assert observation is not None
    observation.end(StreamOutcome(metrics(), result(), None))
    assert "gen_ai.client.operation.duration" in telemetry.histograms()
    tracer_provider.shutdown()
