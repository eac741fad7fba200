"""OpenTelemetry metrics and spans for rawsse clients, per the GenAI semantic conventions.

``instrument(client)`` is the whole API: every stream of that client then
records, through the OpenTelemetry API (``pip install 'rawsse[otel]'``; the SDK
and exporters are the application's)::

    gen_ai.client.operation.duration            s        stream.metrics.total
    gen_ai.client.token.usage                   {token}  input and output tokens
    gen_ai.client.operation.time_to_first_chunk s        stream.metrics.ttft
    gen_ai.client.operation.time_per_output_chunk s      each gap between content reads

with ``gen_ai.operation.name`` (``chat``), ``gen_ai.provider.name``,
``gen_ai.request.model``, ``gen_ai.response.model``, ``server.address``,
``server.port`` and, on the duration of a stream that failed or was cancelled,
``error.type``; each histogram carries the conventions' bucket boundaries as
its advisory.  Each stream is one span ``chat {model}`` of kind CLIENT with the
same attributes, the response id, finish reasons and token counts, one event
per retry (``rawsse.retry``) and continuation (``rawsse.continuation``), and
status ERROR when the stream failed or was cancelled.  A ``complete(stream=False)``
request records its span, duration and token usage (the chunk metrics are for
streams only).

Readings of the conventions:

* the first chunk is the first content event (text, reasoning, tool call or
  refusal), the same instant as ``stream.metrics.ttft``, measured from the
  request of the attempt that succeeded: a role-only chunk or a keep-alive is
  not what a user waits for;
* chunks that arrive in one network read count as one chunk: their
  separation is not observable, and counting zeros would make the metric
  measure how TCP coalesced them;
* ``error.type`` is the class name of rawsse's error (``RateLimitError``,
  ``FirstTokenTimeout``, ``IncompleteStreamError``, ...; any ``RawSSEError``
  subclass), the class name of a foreign exception, ``cancelled`` when the
  caller stopped the stream, and ``error`` for an in-band error that was
  yielded rather than raised.

Version: the GenAI conventions of semantic conventions 1.41.0.  rawsse had no
earlier OpenTelemetry output to keep, so it emits them by default; it reads
``OTEL_SEMCONV_STABILITY_OPT_IN``, and with ``gen_ai_latest_experimental`` it
emits the latest experimental conventions it supports, today the same 1.41.0
names.  When rawsse learns a later version, that version goes to the opt-in and
the default stays.

No prompt or completion text is recorded unless the application opts in, with
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (``true``, ``span_only``
or ``span_and_event``) or ``instrument(..., capture_content=True)``; then
``gen_ai.input.messages`` and ``gen_ai.output.messages`` go on the span as JSON.
A client that is not instrumented pays nothing: no OpenTelemetry import, no call.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace
    from opentelemetry.metrics import Histogram, MeterProvider
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
except ImportError as exc:  # pragma: no cover (the extra is installed in development)
    raise ImportError(
        "rawsse.otel needs the OpenTelemetry API: pip install 'rawsse[otel]'"
    ) from exc

from ._accumulate import ChatResult
from ._observe import RequestInfo, StreamObservation, StreamObserver, StreamOutcome
from ._version import __version__

__all__ = [
    "DURATION_BUCKETS",
    "SEMCONV_VERSION",
    "TOKEN_BUCKETS",
    "GenAIObserver",
    "instrument",
    "uninstrument",
]

SEMCONV_VERSION = "1.41.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
"""Seconds: duration, time to first chunk and time per output chunk."""
TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
OPT_IN_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
_CAPTURE_ON = frozenset({"true", "1", "span_only", "span_and_event"})

# Hosts whose provider the conventions name; any other OpenAI-compatible server is "openai",
# the API flavour it speaks.
_PROVIDERS = {
    "openrouter.ai": "openrouter",
    "api.openai.com": "openai",
    "api.deepseek.com": "deepseek",
    "api.groq.com": "groq",
    "api.mistral.ai": "mistral_ai",
    "api.x.ai": "x_ai",
    "api.perplexity.ai": "perplexity",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "gcp.gemini",
}

# Request parameters that have a span attribute, with the type the attribute takes.
_REQUEST_ATTRIBUTES: tuple[tuple[str, str, type], ...] = (
    ("max_tokens", "gen_ai.request.max_tokens", int),
    ("max_completion_tokens", "gen_ai.request.max_tokens", int),
    ("temperature", "gen_ai.request.temperature", float),
    ("top_p", "gen_ai.request.top_p", float),
    ("top_k", "gen_ai.request.top_k", float),
    ("frequency_penalty", "gen_ai.request.frequency_penalty", float),
    ("presence_penalty", "gen_ai.request.presence_penalty", float),
    ("seed", "gen_ai.request.seed", int),
)


def provider_name(host: str) -> str:
    """The ``gen_ai.provider.name`` for a server host."""
    host = host.lower()
    for known, name in _PROVIDERS.items():
        if host == known or host.endswith("." + known):
            return name
    if host.endswith(".openai.azure.com"):
        return "azure.ai.openai"
    return "openai"


def latest_experimental(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``OTEL_SEMCONV_STABILITY_OPT_IN`` lists ``gen_ai_latest_experimental``."""
    value = (os.environ if environ is None else environ).get(OPT_IN_ENV, "")
    return "gen_ai_latest_experimental" in {v.strip() for v in value.split(",")}


def capture_content_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """The conventions' content switch, ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``."""
    value = (os.environ if environ is None else environ).get(CAPTURE_ENV, "")
    return value.strip().lower() in _CAPTURE_ON


def error_type(outcome: StreamOutcome) -> str | None:
    """The ``error.type`` of a stream's end, or None when it completed."""
    if outcome.error is not None:
        return type(outcome.error).__qualname__
    status = outcome.metrics.status
    if status == "cancelled":
        return "cancelled"
    if status is None or status == "complete":
        return None
    return status


class GenAIObserver:
    """A ``StreamObserver`` that records GenAI metrics and spans (see the module doc)."""

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
        *,
        capture_content: bool | None = None,
    ) -> None:
        self.latest_experimental = latest_experimental()
        self.capture_content = (
            capture_content_from_env() if capture_content is None else capture_content
        )
        meter = otel_metrics.get_meter("rawsse", __version__, meter_provider, schema_url=SCHEMA_URL)
        self.tracer = trace.get_tracer(
            "rawsse", __version__, tracer_provider, schema_url=SCHEMA_URL
        )

        def histogram(
            name: str, unit: str, description: str, buckets: Sequence[float]
        ) -> Histogram:
            return meter.create_histogram(
                name,
                unit=unit,
                description=description,
                explicit_bucket_boundaries_advisory=list(buckets),
            )

        self.duration = histogram(
            "gen_ai.client.operation.duration", "s", "GenAI operation duration.", DURATION_BUCKETS
        )
        self.token_usage = histogram(
            "gen_ai.client.token.usage",
            "{token}",
            "Number of input and output tokens used.",
            TOKEN_BUCKETS,
        )
        self.time_to_first_chunk = histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            "s",
            "Time to receive the first chunk (rawsse: the first content event).",
            DURATION_BUCKETS,
        )
        self.time_per_output_chunk = histogram(
            "gen_ai.client.operation.time_per_output_chunk",
            "s",
            "Time between chunks of output after the first one.",
            DURATION_BUCKETS,
        )

    def start(self, request: RequestInfo) -> StreamObservation:
        return _Observation(self, request)


class _Observation:
    __slots__ = ("_attributes", "_continuations", "_observer", "_request", "_span")

    def __init__(self, observer: GenAIObserver, request: RequestInfo) -> None:
        self._observer = observer
        self._request = request
        self._continuations = 0
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": request.operation,
            "gen_ai.provider.name": provider_name(request.server_address),
            "gen_ai.request.model": request.model,
            "server.address": request.server_address,
            "server.port": request.server_port,
        }
        self._attributes = attributes
        span = observer.tracer.start_span(
            f"{request.operation} {request.model}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        self._span = span
        if span.is_recording():
            span.set_attributes(_request_attributes(request))
            if observer.capture_content:
                span.set_attribute("gen_ai.input.messages", _input_messages(request.messages))

    def retry(self, attempt: int, error: BaseException, delay: float) -> None:
        self._span.add_event(
            "rawsse.retry",
            {
                "rawsse.attempt": attempt,
                "error.type": type(error).__qualname__,
                "rawsse.retry.delay": delay,
            },
        )

    def continuation(self, number: int, error: BaseException | None) -> None:
        self._continuations = number
        event: dict[str, Any] = {"rawsse.continuation": number}
        if error is not None:
            event["error.type"] = type(error).__qualname__
        self._span.add_event("rawsse.continuation", event)

    def end(self, outcome: StreamOutcome) -> None:
        metrics = outcome.metrics
        attributes = dict(self._attributes)
        if metrics.model:
            attributes["gen_ai.response.model"] = metrics.model
        failure = error_type(outcome)
        self._end_span(outcome, attributes, failure)
        observer = self._observer
        if metrics.ttft is not None:
            observer.time_to_first_chunk.record(metrics.ttft, attributes)
            if outcome.gaps:
                record = observer.time_per_output_chunk.record
                for gap in outcome.gaps:
                    record(gap, attributes)
        if metrics.prompt_tokens is not None:
            _record_tokens(observer.token_usage, metrics.prompt_tokens, "input", attributes)
        if metrics.completion_tokens is not None:
            _record_tokens(observer.token_usage, metrics.completion_tokens, "output", attributes)
        if failure is not None:
            attributes["error.type"] = failure
        if metrics.total is not None:
            observer.duration.record(metrics.total, attributes)

    def _end_span(
        self, outcome: StreamOutcome, attributes: dict[str, Any], failure: str | None
    ) -> None:
        span: Span = self._span
        if span.is_recording():
            span.set_attributes(_response_attributes(outcome, attributes, self._continuations))
            if self._observer.capture_content:
                span.set_attribute("gen_ai.output.messages", _output_messages(outcome.result))
            if failure is not None:
                span.set_attribute("error.type", failure)
                span.set_status(Status(StatusCode.ERROR, failure))
        span.end()


def _record_tokens(
    histogram: Histogram, count: int, kind: str, attributes: Mapping[str, Any]
) -> None:
    histogram.record(count, {**attributes, "gen_ai.token.type": kind})


def _request_attributes(request: RequestInfo) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if request.stream:
        attributes["gen_ai.request.stream"] = True
    params = request.params
    for key, name, kind in _REQUEST_ATTRIBUTES:
        value = params.get(key)
        if value is None or isinstance(value, bool):
            continue
        if kind is float and isinstance(value, (int, float)):
            attributes[name] = float(value)
        elif kind is int and isinstance(value, int):
            attributes[name] = value
    stop = params.get("stop")
    if isinstance(stop, str):
        attributes["gen_ai.request.stop_sequences"] = (stop,)
    elif isinstance(stop, Sequence) and all(isinstance(s, str) for s in stop):
        attributes["gen_ai.request.stop_sequences"] = tuple(stop)
    n = params.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n != 1:
        attributes["gen_ai.request.choice.count"] = n
    response_format = params.get("response_format")
    if isinstance(response_format, Mapping):
        output = response_format.get("type")
        attributes["gen_ai.output.type"] = "text" if output == "text" else "json"
    return attributes


def _response_attributes(
    outcome: StreamOutcome, base: Mapping[str, Any], continuations: int
) -> dict[str, Any]:
    metrics = outcome.metrics
    result = outcome.result
    attributes: dict[str, Any] = {}
    if "gen_ai.response.model" in base:
        attributes["gen_ai.response.model"] = base["gen_ai.response.model"]
    if result.id:
        attributes["gen_ai.response.id"] = result.id
    reasons = tuple(c.finish_reason for c in result.choices if c.finish_reason)
    if reasons:
        attributes["gen_ai.response.finish_reasons"] = reasons
    if metrics.prompt_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = metrics.prompt_tokens
    if metrics.completion_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = metrics.completion_tokens
    if metrics.reasoning_tokens is not None:
        attributes["gen_ai.usage.reasoning.output_tokens"] = metrics.reasoning_tokens
    usage = result.usage
    if usage is not None and usage.cached_tokens is not None:
        attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cached_tokens
    if metrics.ttft is not None:
        attributes["gen_ai.response.time_to_first_chunk"] = metrics.ttft
    attributes["rawsse.attempts"] = metrics.attempts
    attributes["rawsse.continuations"] = continuations
    if metrics.provider:
        attributes["rawsse.upstream_provider"] = metrics.provider
    if metrics.generation_id:
        attributes["rawsse.generation_id"] = metrics.generation_id
    return attributes


# -- content (opt-in only) ---------------------------------------------------------


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    if isinstance(content, list):
        for item in content:
            if isinstance(item, Mapping) and item.get("type") == "text":
                parts.append({"type": "text", "content": item.get("text", "")})
            elif isinstance(item, Mapping):
                parts.append({"type": str(item.get("type", "unknown"))})
    return parts


def _input_messages(messages: Any) -> str:
    converted: list[dict[str, Any]] = []
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, Mapping):
            continue
        role = str(message.get("role", "user"))
        if role == "tool":
            parts: list[dict[str, Any]] = [
                {
                    "type": "tool_call_response",
                    "id": message.get("tool_call_id"),
                    "response": message.get("content"),
                }
            ]
        else:
            parts = _parts(message.get("content"))
            for call in message.get("tool_calls") or ():
                if isinstance(call, Mapping):
                    function = call.get("function") or {}
                    parts.append(
                        {
                            "type": "tool_call",
                            "id": call.get("id"),
                            "name": function.get("name"),
                            "arguments": function.get("arguments"),
                        }
                    )
        converted.append({"role": role, "parts": parts})
    return json.dumps(converted, ensure_ascii=False)


def _output_messages(result: ChatResult) -> str:
    converted = []
    for choice in result.choices:
        parts: list[dict[str, Any]] = []
        if choice.reasoning:
            parts.append({"type": "reasoning", "content": choice.reasoning})
        if choice.content:
            parts.append({"type": "text", "content": choice.content})
        if choice.refusal:
            parts.append({"type": "refusal", "content": choice.refusal})
        parts.extend(
            {"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments}
            for call in choice.tool_calls
        )
        converted.append(
            {
                "role": choice.role or "assistant",
                "parts": parts,
                "finish_reason": choice.finish_reason,
            }
        )
    return json.dumps(converted, ensure_ascii=False)


# -- the one-line API ----------------------------------------------------------------


def instrument(
    client: Any,
    meter_provider: MeterProvider | None = None,
    tracer_provider: TracerProvider | None = None,
    *,
    capture_content: bool | None = None,
) -> GenAIObserver:
    """Record GenAI metrics and spans for every stream of ``client``: a ``Client``, an
    ``AsyncClient``, or a ``RelayApp`` (whose streams go through its ``client``).
    The global providers unless given; instrumenting again replaces the earlier
    instrumentation.  Returns the observer."""
    uninstrument(client)
    observer = GenAIObserver(meter_provider, tracer_provider, capture_content=capture_content)
    _client_of(client).add_observer(observer)
    return observer


def uninstrument(client: Any) -> None:
    """Stop recording for ``client`` (no-op when it was not instrumented)."""
    target = _client_of(client)
    observers: tuple[StreamObserver, ...] = target.observers
    for observer in observers:
        if isinstance(observer, GenAIObserver):
            target.remove_observer(observer)


def _client_of(target: Any) -> Any:
    # A RelayApp has no observers of its own: its streams are its client's.
    if not hasattr(target, "add_observer") and hasattr(target, "client"):
        return target.client
    return target
