"""OpenTelemetry tracing, W3C trace context in Kafka headers, and Prometheus metrics.

One application must be one trace across every service, so every hop injects the current
context into what it sends (Kafka headers here; HTTP and gRPC through their instrumentations)
and every consumer continues the trace it extracts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from services.common.settings import ServiceSettings

KafkaHeaders = list[tuple[str, bytes]]

EVENTS_CONSUMED = Counter(
    "alama_events_consumed_total",
    "Kafka records handled by a consumer, by outcome (processed, dead_lettered, skipped)",
    ["service", "topic", "outcome"],
)
EVENTS_PUBLISHED = Counter(
    "alama_events_published_total", "Events published to Kafka", ["service", "topic"]
)
HANDLE_SECONDS = Histogram(
    "alama_event_handle_seconds",
    "Time to handle one Kafka record",
    ["service", "topic"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
CONSUMER_LAG = Gauge(
    "alama_consumer_lag",
    "Records behind the end of the partition after the last handled batch",
    ["service", "topic", "partition"],
)


class _HeaderSetter(Setter[KafkaHeaders]):
    def set(self, carrier: KafkaHeaders, key: str, value: str) -> None:
        carrier[:] = [(k, v) for k, v in carrier if k != key]
        carrier.append((key, value.encode()))


class _HeaderGetter(Getter[Sequence[tuple[str, bytes]]]):
    def get(self, carrier: Sequence[tuple[str, bytes]], key: str) -> list[str] | None:
        values = [v.decode(errors="replace") for k, v in carrier if k == key and v is not None]
        return values or None

    def keys(self, carrier: Sequence[tuple[str, bytes]]) -> list[str]:
        return [k for k, _ in carrier]


def inject_kafka_headers(
    headers: KafkaHeaders | None = None, context: Context | None = None
) -> KafkaHeaders:
    """Add traceparent (and tracestate, baggage) for the current or given context."""
    carrier: KafkaHeaders = list(headers or [])
    propagate.inject(carrier, context=context, setter=_HeaderSetter())
    return carrier


def extract_kafka_context(headers: Iterable[tuple[str, bytes]] | None) -> Context:
    return propagate.extract(list(headers or []), getter=_HeaderGetter())


def extract_grpc_context(metadata: Sequence[tuple[str, str | bytes]] | None) -> Context:
    """The caller's trace context from gRPC text metadata (binary `-bin` entries are skipped)."""
    carrier = {k.lower(): v for k, v in metadata or () if isinstance(v, str)}
    return propagate.extract(carrier)


def inject_grpc_metadata(
    metadata: Iterable[tuple[str, str]] | None = None,
) -> list[tuple[str, str]]:
    """Metadata for a gRPC client call carrying the current trace context."""
    carrier: dict[str, str] = dict(metadata or ())
    propagate.inject(carrier)
    return list(carrier.items())


def json_lines_exporter(path: str) -> SpanExporter:
    """Spans as JSON lines: how local runs and tests see traces without a collector."""
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    stream = open(path, "a", buffering=1)
    # one compact line per span, in one encoding pass (the exporter runs for every span)
    return ConsoleSpanExporter(out=stream, formatter=lambda span: span.to_json(indent=None) + "\n")


def setup_tracing(
    settings: ServiceSettings, exporter: SpanExporter | None = None
) -> TracerProvider:
    """Install a tracer provider for the service; export over OTLP when an endpoint is set."""
    provider = TracerProvider(
        # a child span follows its parent's choice, so a trace is whole or absent across services
        sampler=ParentBased(TraceIdRatioBased(settings.infra.trace_sample_ratio)),
        resource=Resource.create(
            {
                "service.name": settings.service_name,
                "service.namespace": "alama",
                "deployment.environment": settings.infra.environment,
            }
        ),
    )
    if exporter is None and settings.infra.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=settings.infra.otlp_endpoint, insecure=True)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    if settings.infra.trace_file:
        provider.add_span_processor(
            BatchSpanProcessor(json_lines_exporter(settings.infra.trace_file))
        )
    trace.set_tracer_provider(provider)
    return provider


def start_metrics(settings: ServiceSettings) -> None:
    """Serve /metrics for Prometheus on the service's metrics port (0 leaves it off)."""
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr="0.0.0.0")
