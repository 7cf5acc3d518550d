"""OpenTelemetry set-up and the small NATS helper (trace context in message headers).

gRPC, FastAPI and SQLAlchemy use the standard instrumentations; the exporter is chosen by
``OTEL_TRACES_EXPORTER`` (``none`` by default, ``otlp`` or ``console``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind

tracer = trace.get_tracer("fengqiao")


def exporter_for(name: str) -> SpanExporter | None:
    """The span exporter named by ``OTEL_TRACES_EXPORTER``, or ``None`` when tracing is off."""
    name = name.strip().lower()
    if name in ("", "none"):
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    raise ValueError(f"unsupported OTEL_TRACES_EXPORTER: {name}")


def setup_tracing(*, service_name: str, exporter: SpanExporter | None) -> None:
    """Install a tracer provider once per process; a no-op when no exporter is given."""
    if exporter is None:
        return
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        current.add_span_processor(BatchSpanProcessor(exporter))
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def enabled() -> bool:
    """True when this process records spans (an SDK tracer provider is installed).

    With tracing off (the default) the instrumentation is not installed at all, so it costs
    nothing on the hot paths.
    """
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def instrument_sqlalchemy() -> None:
    """Trace every engine created from now on (once per process), when tracing is on."""
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    if not enabled():
        return

    instrumentor = SQLAlchemyInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def current_headers() -> dict[str, str]:
    """The current trace context as message headers (traceparent, tracestate)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextlib.contextmanager
def publish_span(subject: str, parent_headers: Mapping[str, str]) -> Iterator[tuple[Span, dict[str, str]]]:
    """A PRODUCER span continuing the trace stored with the message; yields headers to send."""
    ctx = propagate.extract(dict(parent_headers))
    with tracer.start_as_current_span(f"publish {subject}", context=ctx, kind=SpanKind.PRODUCER) as span:
        span.set_attribute("messaging.system", "nats")
        span.set_attribute("messaging.destination.name", subject)
        yield span, current_headers()


@contextlib.contextmanager
def consume_span(subject: str, headers: Mapping[str, str] | None, *, consumer: str) -> Iterator[Span]:
    """A CONSUMER span whose parent is the context carried in the message headers."""
    ctx = propagate.extract(dict(headers or {}))
    with tracer.start_as_current_span(f"process {subject}", context=ctx, kind=SpanKind.CONSUMER) as span:
        span.set_attribute("messaging.system", "nats")
        span.set_attribute("messaging.consumer.group.name", consumer)
        span.set_attribute("messaging.destination.name", subject)
        yield span
