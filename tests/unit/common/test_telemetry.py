import io
import json
import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from services.common.logs import configure_logging
from services.common.telemetry import extract_kafka_context, inject_kafka_headers

tracer = TracerProvider().get_tracer("test")


def test_trace_context_survives_kafka_headers() -> None:
    with tracer.start_as_current_span("produce") as span:
        headers = inject_kafka_headers([("other", b"kept")])
        sent = span.get_span_context()
    assert ("other", b"kept") in headers
    traceparent = dict(headers)["traceparent"].decode()
    assert traceparent.startswith(f"00-{sent.trace_id:032x}-{sent.span_id:016x}-")

    with tracer.start_as_current_span("consume", context=extract_kafka_context(headers)) as child:
        received = child.get_span_context()
        parent = child.parent  # type: ignore[attr-defined]
    assert received.trace_id == sent.trace_id
    assert parent is not None and parent.span_id == sent.span_id


def test_injecting_twice_replaces_rather_than_duplicates() -> None:
    with tracer.start_as_current_span("a"):
        headers = inject_kafka_headers()
        headers = inject_kafka_headers(headers)
    assert [k for k, _ in headers].count("traceparent") == 1


def test_missing_or_garbled_headers_start_a_new_trace() -> None:
    for headers in (None, [], [("traceparent", b"garbage")]):
        ctx = extract_kafka_context(headers)
        assert not trace.get_current_span(ctx).get_span_context().is_valid


def test_logs_are_json_with_the_active_trace_id() -> None:
    stream = io.StringIO()
    configure_logging("scoring", "INFO", stream=stream)
    try:
        with tracer.start_as_current_span("work") as span:
            logging.getLogger("alama.test").info("scored", extra={"application_id": "a-1"})
            trace_id = f"{span.get_span_context().trace_id:032x}"
        record = json.loads(stream.getvalue().splitlines()[-1])
    finally:
        logging.getLogger().handlers.clear()
    assert record["message"] == "scored"
    assert record["level"] == "INFO"
    assert record["service"] == "scoring"
    assert record["trace_id"] == trace_id
    assert record["application_id"] == "a-1"


def test_sampling_is_a_setting_and_a_trace_is_whole_or_absent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ALAMA_TRACE_SAMPLE_RATIO samples new traces; a span continuing a caller's trace follows
    the caller's choice, so each service records all of a sampled trace and none of another."""
    from services.common.settings import ServiceSettings
    from services.common.telemetry import setup_tracing

    def provider(ratio: str) -> TracerProvider:
        monkeypatch.setenv("ALAMA_TRACE_SAMPLE_RATIO", ratio)
        monkeypatch.setattr(trace, "set_tracer_provider", lambda _provider: None)
        return setup_tracing(ServiceSettings(service_name="sampling-test"))

    always, never = provider("1").get_tracer("t"), provider("0").get_tracer("t")
    with always.start_as_current_span("sampled root") as root:
        assert root.is_recording()
        sampled = inject_kafka_headers()
    with never.start_as_current_span("new root") as skipped:
        assert not skipped.is_recording()
        unsampled = inject_kafka_headers()
    # downstream, at ratio 0: the sampled trace is still recorded, the other one not
    with never.start_as_current_span("consume", context=extract_kafka_context(sampled)) as s:
        assert s.is_recording()
    with always.start_as_current_span("consume", context=extract_kafka_context(unsampled)) as s:
        assert not s.is_recording()
