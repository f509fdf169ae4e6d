"""gRPC wiring: `alama.audit.v1.AuditService` (an application's trail, verified) and the
standard health service, so other services read the chain through a contract, never its tables.

Trace context arrives in the call metadata (W3C traceparent), so the console's trace continues
here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from services.audit.metrics import GRPC_REQUESTS
from services.audit.trail import TrailReader, TrailReport
from services.common.grpc_server import GrpcServer, start_grpc_server
from services.common.protos.alama.audit.v1 import audit_pb2, audit_pb2_grpc
from services.common.telemetry import extract_grpc_context

tracer = trace.get_tracer("alama.audit")

SERVICE_NAME = audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def trail_response(report: TrailReport) -> audit_pb2.GetTrailResponse:
    """The report on the wire: payloads as stored (commitments, never personal values)."""
    trail = report.trail
    events = [
        audit_pb2.AuditedEvent(
            seq=r.row.seq,
            topic=r.row.topic,
            payload_type=r.row.payload_type,
            event_id=r.row.event_id,
            producer=r.row.producer,
            occurred_at=_timestamp(r.row.occurred_at),
            recorded_at=_timestamp(r.row.recorded_at),
            trace_id=r.row.trace_id,
            prev_hash=r.row.prev_hash,
            row_hash=r.row.row_hash,
            payload_json=r.row.payload,
            check=audit_pb2.RecordCheck(
                verified=r.verified, problem=r.problem, next_problem=r.next_problem
            ),
        )
        for r in trail.records
    ]
    chain = trail.chain
    status = audit_pb2.ChainStatus(
        scope=audit_pb2.VERIFICATION_SCOPE_CHAIN
        if report.chain_verified or not chain.ok
        else audit_pb2.VERIFICATION_SCOPE_RECORDS,
        ok=chain.ok and all(r.verified for r in trail.records),
        first_broken_seq=chain.first_broken_seq or 0,
        reason=chain.reason,
        start_seq=trail.start_seq,
        head_seq=trail.head_seq,
        anchor_note=report.anchor_note,
    )
    broken = next((r for r in trail.records if not r.verified), None)
    if chain.ok and broken is not None:  # the chain's checked part holds; this record does not
        status.first_broken_seq = broken.row.seq
        status.reason = broken.problem
    if report.verified_through is not None:
        status.verified_through_seq = report.verified_through.head.seq
        status.prefix_verified_at.FromDatetime(report.verified_through.since)
    if report.anchor is not None:
        anchor = report.anchor
        status.latest_anchor.CopyFrom(
            audit_pb2.Anchor(
                seq=anchor.record.seq,
                row_hash=anchor.record.row_hash,
                anchored_at=_timestamp(anchor.record.anchored_at),
                sealed=anchor.sealed,
                matches_chain=anchor.matches_chain,
            )
        )
    return audit_pb2.GetTrailResponse(
        application_id=trail.records[0].row.application_id,
        events=events,
        chain=status,
        checked_at=_timestamp(report.checked_at),
    )


@contextmanager
def _rpc(method: str, context: grpc.aio.ServicerContext) -> Iterator[list[grpc.StatusCode]]:
    """A server span and the request counter around one call; the list holds its status."""
    code = [grpc.StatusCode.OK]
    with tracer.start_as_current_span(
        f"{SERVICE_NAME}/{method}",
        context=extract_grpc_context(context.invocation_metadata()),
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": SERVICE_NAME, "rpc.method": method},
    ) as span:
        try:
            yield code
        except Exception:
            if code[0] == grpc.StatusCode.OK:  # not an abort: a failure of ours
                code[0] = grpc.StatusCode.UNKNOWN
            raise
        finally:
            span.set_attribute("rpc.grpc.status_code", code[0].value[0])
            GRPC_REQUESTS.labels(method, code[0].name).inc()


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, reader: TrailReader) -> None:
        self.reader = reader

    async def GetTrail(
        self, request: audit_pb2.GetTrailRequest, context: grpc.aio.ServicerContext
    ) -> audit_pb2.GetTrailResponse:
        with _rpc("GetTrail", context) as code:
            if not request.application_id:
                code[0] = grpc.StatusCode.INVALID_ARGUMENT
                await context.abort(code[0], "give an application_id")
            report = await self.reader.trail(request.application_id, request.tenant_id or None)
            if report is None:
                code[0] = grpc.StatusCode.NOT_FOUND
                await context.abort(
                    code[0], f"no audited event of application {request.application_id!r}"
                )
            assert report is not None  # abort raises
            return trail_response(report)


async def start_server(reader: TrailReader, *, host: str, port: int) -> GrpcServer:
    """Start serving AuditService and health on host:port (0 picks one)."""
    servicer = AuditServicer(reader)
    return await start_grpc_server(
        SERVICE_NAME,
        lambda server: audit_pb2_grpc.add_AuditServiceServicer_to_server(servicer, server),
        host=host,
        port=port,
    )
