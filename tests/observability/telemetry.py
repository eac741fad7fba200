"""The OpenTelemetry SDK's in-memory reader and exporter, for the ``rawsse.otel`` tests."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

NAMES = {
    "gen_ai.client.operation.duration": "s",
    "gen_ai.client.token.usage": "{token}",
    "gen_ai.client.operation.time_to_first_chunk": "s",
    "gen_ai.client.operation.time_per_output_chunk": "s",
}
"""The GenAI histograms ``rawsse.otel`` records, and their units."""

SECONDS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
"""The bucket boundaries of the histograms in seconds (the semantic conventions' advice)."""


class Telemetry:
    """A meter and a tracer provider that keep what they record in memory."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def histograms(self) -> dict[str, tuple[str, list[HistogramDataPoint]]]:
        """Each histogram's unit and points, by name; all of them rawsse's own."""
        data = self.reader.get_metrics_data()
        found: dict[str, tuple[str, list[HistogramDataPoint]]] = {}
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                assert scope.scope.name == "rawsse"
                assert scope.scope.schema_url == "https://opentelemetry.io/schemas/1.41.0"
                for metric in scope.metrics:
                    points = [
                        p for p in metric.data.data_points if isinstance(p, HistogramDataPoint)
                    ]
                    found[metric.name] = (metric.unit or "", points)
        return found

    def span(self) -> ReadableSpan:
        """The one finished span."""
        (span,) = self.exporter.get_finished_spans()
        return span

    def shutdown(self) -> None:
        self.meter_provider.shutdown()
        self.tracer_provider.shutdown()
