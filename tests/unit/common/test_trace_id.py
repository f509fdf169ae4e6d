"""The trace id a consumer keeps (audit rows, stored decisions), read from the W3C traceparent."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider

from services.common.kafka import trace_id_from_headers
from services.common.telemetry import inject_kafka_headers

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_trace_id_comes_from_the_traceparent_header() -> None:
    headers = [
        ("alama-payload-type", b"alama.events.v1.CreditDecision"),
        ("traceparent", f"00-{TRACE}-00f067aa0ba902b7-01".encode()),
    ]
    assert trace_id_from_headers(headers) == TRACE
    assert trace_id_from_headers([("traceparent", f"00-{TRACE.upper()}-00f0-01".encode())]) == (
        TRACE
    )


def test_missing_or_malformed_traceparent_gives_no_trace_id() -> None:
    assert trace_id_from_headers(None) == ""
    assert trace_id_from_headers([]) == ""
    assert trace_id_from_headers([("tracestate", b"x=1")]) == ""
    for bad in (b"", b"garbage", b"00-short-00f067aa0ba902b7-01", b"00-" + b"0" * 32 + b"-a-01"):
        assert trace_id_from_headers([("traceparent", bad)]) == "", bad
    assert trace_id_from_headers([("traceparent", b"00-" + b"z" * 32 + b"-ab-01")]) == ""


def test_trace_id_matches_what_the_propagator_injects() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("scoring publish") as span:
        headers = inject_kafka_headers()
    expected = format(span.get_span_context().trace_id, "032x")
    assert trace_id_from_headers(headers) == expected
