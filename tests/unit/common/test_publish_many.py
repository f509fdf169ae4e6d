"""One call's envelopes go out under one PRODUCER span, each record carrying its trace."""

import asyncio
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.common.envelope import encode, wrap
from services.common.kafka import publish_many
from services.common.protos.alama.events.v1.mobile_money_pb2 import MobileMoneyTransaction
from services.common.telemetry import extract_kafka_context


class _Producer:
    """Records what `send` was given; each delivery resolves at once."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, topic: str, value: bytes, *, key: bytes | None, headers: Any) -> Any:
        self.sent.append({"topic": topic, "value": value, "key": key, "headers": headers})
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        future.set_result(len(self.sent))
        return future


def _envelope(n: int) -> Any:
    txn = MobileMoneyTransaction(transaction_id=f"t-{n}", member_id=f"m-{n}", amount_kes=n)
    return wrap(txn, producer="unit", subject=f"m-{n}")


async def test_a_batch_is_one_span_and_every_record_carries_its_context(
    spans: InMemorySpanExporter,
) -> None:
    producer = _Producer()
    envelopes = [_envelope(n) for n in range(5)]
    spans.clear()
    with trace.get_tracer("unit").start_as_current_span("the call"):
        deliveries = await publish_many(producer, "mobile_money.transactions", envelopes)  # type: ignore[arg-type]
    assert await asyncio.gather(*deliveries) == [1, 2, 3, 4, 5]
    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    published = [s for s in spans.get_finished_spans() if s.kind == SpanKind.PRODUCER]
    assert len(published) == 1
    span = published[0]
    assert span.attributes["messaging.batch.message_count"] == 5
    for sent, envelope in zip(producer.sent, envelopes, strict=True):
        assert sent["value"] == encode(envelope)
        assert sent["key"] == envelope.subject.encode()
        assert ("alama-payload-type", envelope.payload_type.encode()) in sent["headers"]
        context = trace.get_current_span(extract_kafka_context(sent["headers"])).get_span_context()
        assert context.span_id == span.context.span_id
        assert context.trace_id == span.context.trace_id


async def test_nothing_to_publish_opens_no_span(spans: InMemorySpanExporter) -> None:
    spans.clear()
    assert await publish_many(_Producer(), "t", []) == []  # type: ignore[arg-type]
    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    assert spans.get_finished_spans() == ()


async def test_each_envelope_carries_its_own_headers_beside_the_trace() -> None:
    producer = _Producer()
    envelopes = [_envelope(n) for n in range(3)]
    own = [[("alama-decided", f"d-{n}".encode())] for n in range(3)]
    with trace.get_tracer("unit").start_as_current_span("the call"):
        await publish_many(producer, "loan.applications", envelopes, headers=own)  # type: ignore[arg-type]
    for sent, mine in zip(producer.sent, own, strict=True):
        assert mine[0] in sent["headers"]
        assert [h for h in sent["headers"] if h[0] == "alama-decided"] == mine  # not the others'
        assert any(key == "traceparent" for key, _ in sent["headers"])  # the trace still travels


async def test_headers_that_do_not_match_the_envelopes_are_refused() -> None:
    producer = _Producer()
    with pytest.raises(ValueError, match="2 header lists for 3 envelopes"):
        await publish_many(producer, "t", [_envelope(n) for n in range(3)], headers=[[], []])  # type: ignore[arg-type]
    assert producer.sent == []
